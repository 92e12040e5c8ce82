"""What a question asks for rules sentences out before any judge is asked (qa/asked_for.py)."""

from __future__ import annotations

import re

import pytest

from qa.asked_for import NUMBER_WORDS, asked_for
from qa.extractive import rank_evidence

from test_pipeline import quotes_resolve

pytestmark = pytest.mark.both_stores


@pytest.mark.parametrize("question, kind", [
    ("How many households would have to move?", "count"),
    ("What percentage of the water is lost to leaks?", "count"),
    ("In what year was the authority created?", "year"),
    ("How much does the scheme cost, and who pays?", "amount"),
    ("When did the museum reopen?", "when"),
    ("By when must the plan be approved?", "when"),
    ("Who designed the lighthouse?", "name"),
    ("To whom did the minister write?", "name"),
    ("At which site is the water treated?", "name"),
    ("In which year did the bridge open?", "year"),
    ("What happens to the town when the mill closes?", None),
    ("What did the officials who met in Geneva decide?", None),
])
def test_the_wh_phrase_decides_what_is_asked_for(question, kind):
    assert asked_for(question).kind == kind


def test_a_count_needs_a_number_other_than_the_questions_own():
    asked = asked_for("How many people were hurt in the 2017 floods?")
    flood = "The floods of 2017 hit the valley hard."
    assert asked.excludes("The floods of 2017 hit the valley hard and hurt many.", flood)
    assert not asked.excludes("The floods of 2017 hurt 214 people in the valley.", flood)
    assert not asked.excludes("The floods of 2017 hurt a dozen people in the valley.", flood)


def test_a_year_or_date_asked_for_needs_one_in_the_sentence():
    asked = asked_for("In what year was the water authority created?")
    assert asked.excludes("The authority manages the river and the aquifer.", "")
    assert not asked.excludes("The authority was set up in 1989 to manage the river.", "")
    # The year the question names may be the answer's: "on what date" in the 2022 drought.
    asked = asked_for("How low did the river get in the 2022 drought, and on what date?")
    low = "On 19 August 2022 the river fell to 2.1 cubic metres per second."
    assert not asked.excludes(low, low)


def test_a_year_the_question_names_must_be_in_the_sentences_passage():
    asked = asked_for("How did the partnership change after the elections of 2024?")
    sentence = "After the elections the partnership entered a new stage."
    assert asked.excludes(sentence, "Years later. " + sentence)
    assert not asked.excludes(sentence, "In 2024 there were elections. " + sentence)
    # Without a year in the question, nothing is required of the passage.
    assert not asked_for("How did the partnership change?").excludes(sentence, sentence)


def test_a_sentence_with_what_is_asked_for_ranks_higher():
    asked = asked_for("Who is the chief executive of the city water company?")
    # A name the question does not already use: the executive's, not the company's.
    assert asked.supplies("Its chief executive, Ana Ruiz, says the company is stuck.")
    assert not asked.supplies("The City Water Company finds itself in an awkward position.")
    assert asked_for("How far is the front from the border?").supplies(
        "The front lies some 900 kilometres from the border.")
    assert not asked_for("What caused the drought?").supplies("It began in 2022 in May.")


def test_ranked_evidence_for_a_count_holds_numbers_only(replay_assistant):
    assistant = replay_assistant("", abstain_threshold=-1)
    question = "How many people were killed and wounded in the attacks on Iran's parliament?"
    hits = assistant.passages_for(question)
    ranked = rank_evidence(question, hits, assistant.score_sentences)
    assert ranked and all(re.search(r"\d", e.sentence.text) or NUMBER_WORDS & set(
        re.findall(r"[a-z]+", e.sentence.text.lower())) for e in ranked)
    every = rank_evidence("What happened in the attacks on Iran's parliament?", hits,
                          assistant.score_sentences)
    assert len(every) > len(ranked)  # the others were ruled out, not missing


def test_a_question_about_a_year_no_passage_mentions_is_refused(replay_assistant):
    """Refused before any judge or model: the passages never mention the year asked about."""
    assistant = replay_assistant("Russia backed Assad [1].", abstain_threshold=-1)
    answer = assistant.ask("Where did Moscow and Tehran disagree on Assad in 1850?")
    assert answer.abstained and not answer.citations
    assert any("holds what the question asks for (a passage that mentions 1850)" in note
               for note in answer.notes)
    # The same question about a year the documents discuss goes on to the model as usual.
    answer = assistant.ask("Where did Moscow and Tehran disagree on Assad in 2015?")
    assert not answer.abstained and answer.citations
    quotes_resolve(answer)


def test_the_names_a_question_asks_about():
    names = asked_for("What did Mayor Ana Lindqvist's office say about the Bank of the North? "
                      "Compare Oslo.").names
    # The title is no name, "of the" stays inside one, a sentence's first word is no name.
    assert names == (("Ana", "Lindqvist"), ("Bank", "North"), ("Oslo",))
    assert asked_for("What did the President say about the harbour?").names == ()


def test_a_name_is_mentioned_by_any_of_its_words_written_with_a_capital():
    asked = asked_for("What role did the Harbour Navy play in the Gold Group's strike?")
    texts = ["The Harbour's ships stayed in port.", "A group of miners went on strike."]
    # One word of a name is enough; in lower case a word mentions no name ...
    assert asked.unmentioned(texts) == ("Gold Group",)
    assert asked.unmentioned(texts + ["The Gold Group's miners struck."]) == ()
    # ... unless every word of it is there: a common noun the question capitalised.
    assert asked.unmentioned(texts + ["The gold ran out."]) == ()
    assert asked_for("HOW DID THE GOLD GROUP STRIKE?").names == ()  # capitals tell nothing
    assert asked_for("Who's Lindqvist?").names == (("Lindqvist",),)
    assert asked_for("Why did the Harbour Navy's admirals resign?").unmentioned(
        ["The admirals of the Harbours resigned."]) == ()  # possessive and plural
    # An acronym the texts spell out, or a name they abbreviate, is mentioned.
    spelled = ["The European Union backs the harbour."]
    assert asked_for("What does the EU say about the harbour?").unmentioned(spelled) == ()
    assert asked_for("What does the WTO say about the harbour?").unmentioned(spelled) == ("WTO",)
    assert asked_for("What does the European Union say?").unmentioned(["The EU agrees."]) == ()


def test_a_question_about_someone_no_passage_mentions_is_refused(replay_assistant):
    """Refused before any judge or model, with the name in the reason; a name the passages
    mention goes on to the model as usual."""
    assistant = replay_assistant("Russia backed Assad [1].", abstain_threshold=-1)
    answer = assistant.ask("What did President Ana Lindqvist say about Assad and Moscow?")
    assert answer.abstained and not answer.citations
    assert any("(a passage that mentions Ana Lindqvist)" in note for note in answer.notes)
    answer = assistant.ask("What did Lavrov say about Assad and Moscow?")
    assert not answer.abstained and answer.citations
    quotes_resolve(answer)
