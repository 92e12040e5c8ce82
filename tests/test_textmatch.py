"""The word-level checks behind citation verification."""

from __future__ import annotations

from qa.citations import markers, passage_sentences, split_answer, strip_markers, with_markers
from qa.contracts import Hit
from qa.textmatch import (content_stems, coverage, dropped_negations, polarity_flips, role_swaps,
                          word_for_word)

SOURCE = ("They have different attitudes towards the retention of power by President Bashar "
          "al-Assad. Iran stands for maintaining the current status quo while Russia does not rule "
          "out a creation of a coalition government representing the interests of different Syrian "
          "ethnic and religious groups.")


def test_swapped_roles_are_caught():
    claim = ("Russia stands for maintaining the current status quo while Iran supports a "
             "coalition government.")
    assert coverage(claim, SOURCE) >= 0.8  # word overlap alone would accept it
    assert "stand" in role_swaps(claim, SOURCE)


def test_faithful_paraphrase_is_not_a_swap():
    claim = "Iran stands for maintaining the status quo, while Russia does not rule out a coalition."
    assert role_swaps(claim, SOURCE) == []
    source = ("An Iranian delegation, led by President Hassan Rouhani, arrived in Moscow on Monday "
              "for negotiations with their Russian counterparts.")
    assert role_swaps("Rouhani arrived in Moscow for negotiations.", source) == []


def test_coverage_counts_content_words_and_needs_two_matches():
    assert content_stems("The documents say that Iran's forces were fighting.") == [
        "document", "iran", "forc", "fight"]
    assert coverage("Moscow is more flexible", "Tehran and Moscow met.", min_matched=2) == 0.0
    assert coverage("Moscow is more flexible", "Moscow was flexible.", min_matched=2) == 1.0


def test_markers_parsing_and_placement():
    assert markers("Iran insists [2][3]. Also [2, 5].") == [2, 3, 5]
    assert strip_markers("Iran insists [2] on Assad [3].") == "Iran insists on Assad."
    assert with_markers("Moscow is more flexible.", [2, 4]) == "Moscow is more flexible [2] [4]."
    assert split_answer("Iran insists on Assad. [1] Russia is flexible [2].") == [
        "Iran insists on Assad. [1]", "Russia is flexible [2]."]
    # Markers standing alone cite the sentence after them, not an empty one.
    assert split_answer(" [1]. The mayor opened the bridge. It cost €4 million [2].") == [
        "The mayor opened the bridge. [1]", "It cost €4 million [2]."]
    assert split_answer("[1]. The mayor opened the bridge. [3]. It cost €4 million.") == [
        "The mayor opened the bridge. [1]", "It cost €4 million. [3]"]
    assert split_answer("The mayor opened the bridge in May. [2].") == [
        "The mayor opened the bridge in May. [2]"]
    assert markers(split_answer("[3] [4]. The ferry stopped running.")[0]) == [3, 4]


def test_one_sided_swap_and_voice_change():
    source = "Russia supplied air power while Iran provided ground forces in Syria."
    assert "suppli" in role_swaps("Iran supplied air power.", source)
    passive = ("An Iranian delegation, led by President Hassan Rouhani, arrived in Moscow on "
               "Monday for negotiations with their Russian counterparts.")
    assert role_swaps("President Hassan Rouhani led the Iranian delegation to Moscow.", passive) == []


def test_prefilter_rejects_added_numbers_and_names_but_passes_the_true_claim():
    from qa.judge.base import Claim
    from qa.judge.prefilter import rejection

    text = ("Russian Deputy Foreign Minister Sergei Ryabkov also stated that there are no "
            "contradictions between Russia and Iran over Syria. Ryabkov reiterated that the Astana "
            "talks indicate a high degree of mutual understanding.")
    claim = ("The Iranian delegation that arrived in Moscow for talks in March 2017 was led by "
             "Russian Foreign Minister Sergei Ryabkov.")
    assert "2017" in rejection(Claim(claim, (text,)))
    assert rejection(Claim("Ryabkov said there are no contradictions between Russia and Iran "
                           "over Syria.", (text,))) == ""


def test_prefilter_rejects_a_negation_flip_and_an_acronym_swap():
    from qa.judge.base import Claim
    from qa.judge.prefilter import rejection

    text = ("What we can infer from the Russian officials’ statements is that Assad is not their "
            "red line and any non-extremist government that can maintain stability in Syria is "
            "acceptable to Russia.")
    assert "red" in rejection(Claim("For Russia, Assad is a red line.", (text,)))
    assert rejection(Claim("For Russia, Assad is not a red line.", (text,))) == ""
    armed = "For decades Iran armed and financed Hezbollah in Lebanon."
    assert rejection(Claim("The US armed Hezbollah.", (armed,)))  # "US" is not a stopword here
    assert rejection(Claim("Iran armed Hezbollah.", (armed,))) == ""
    assert "40" in rejection(Claim("The strike killed 40 people.",
                                   ("The strike killed 17 people and wounded 40.",))) or \
        rejection(Claim("The strike killed 40 people.", ("The strike killed 17 people.",)))


def test_a_negation_reaches_no_further_than_its_clause():
    claim = "The resistance in Syria depends on Assad."
    # Text joined without a space after the full stop, as PDFs often give it.
    source = ("Assad patronizes the Resistance Front and we have no one there after him.The "
              "resistance in Syria depends on al-Assad, and we cannot ignore this.")
    assert polarity_flips(claim, source) == []
    assert polarity_flips("Russia delivered the air defence systems.",
                          "Russia did not deliver the air defence systems, officials said.") \
        == ["deliv"]


def test_a_claim_that_cuts_away_a_negation_with_the_word_it_governs_is_caught():
    from qa.judge.base import Claim
    from qa.judge.prefilter import rejection

    source = ("There is no reason for the council to close the old bridge this winter: the "
              "repairs are already paid for.")
    # The negated word ("reason") went with its negation; what it governed stayed.
    assert dropped_negations("The council will close the old bridge this winter.", source) \
        == ["reason"]
    assert rejection(Claim("The council will close the old bridge this winter.", (source,)))
    # A claim that keeps a negation, or keeps too little of the negated clause, is left alone.
    assert dropped_negations("The council has no reason to close the old bridge.", source) == []
    assert dropped_negations("The repairs to the bridge are already paid for.", source) == []


def test_a_passage_sentence_never_runs_past_a_paragraph_break():
    # A paragraph ending in a quotation used to run on into the next one as one "sentence".
    text = ('The chair was blunt. "We changed because we had to. Now they want us to change '
            'again."\n\nBrannock chairs the cooperative, which has 412 member farms.\n \nThe '
            'vote is\n\nset for May.')  # a page break inside a sentence: no full stop before it
    hit = Hit(1, 1.0, "d", "D", "d.txt", 100, 100 + len(text), text, "", 1, 1)
    sentences = passage_sentences(hit)
    assert [s.text for s in sentences] == [
        "The chair was blunt.",
        '"We changed because we had to. Now they want us to change again."',
        "Brannock chairs the cooperative, which has 412 member farms.",
        "The vote is\n\nset for May."]
    assert all(text[s.start - 100:s.end - 100] == s.text for s in sentences)


def test_word_for_word_measures_a_copy_against_the_longer_text():
    source = "The council approved the new bridge in May 2019 after a long debate[12]."
    assert word_for_word("The council approved the new bridge in May 2019 after a long debate.",
                         source) == 1.0  # the footnote mark is no word
    assert word_for_word("the Council approved the new bridge in may 2019 after a long debate",
                         source) == 1.0
    assert 0.9 <= word_for_word("The mayor approved the new bridge in May 2019 after a long "
                                "debate.", source) < 1.0
    # Half the sentence, or its words in another order, is no copy of it.
    assert word_for_word("The council approved the new bridge.", source) < 0.6
    assert word_for_word("After a long debate in May 2019 the council approved the new bridge.",
                         source) < 0.9
    assert word_for_word("", source) == 0.0
