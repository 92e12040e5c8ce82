"""Documents named in a question by author or publisher (qa/named_sources.py)."""

from qa.named_sources import named_documents, source_names, without_names

DOCUMENTS = [
    ("a", {"author": "Harbour Policy Institute", "date": "2019"}),
    ("b", {"author": "Ana M. Ferreira"}),
    ("c", {"publisher": "The Coastal Review", "author": "South Gate"}),
    ("d", {}),
    ("e", {"author": ["Lena Brandt", "Tomas Weil"]}),
    ("f", {"publisher": "Journal of Coastal Engineering (JCE)"}),
]


def test_a_whole_name_names_its_document():
    assert named_documents("What does the Harbour Policy Institute report say about tolls?",
                           DOCUMENTS) == ("a",)


def test_a_persons_surname_is_enough_but_only_capitalised():
    assert named_documents("Why, according to Ferreira, did the ferry close?", DOCUMENTS) == ("b",)
    assert named_documents("why according to ferreira did the ferry close", DOCUMENTS) == ()


def test_two_named_sources_in_the_order_of_the_collection():
    question = "Do Ferreira and the Harbour Policy Institute agree on the tolls?"
    assert named_documents(question, DOCUMENTS) == ("a", "b")


def test_part_of_an_organisations_name_names_nothing():
    assert named_documents("Which institute studied the harbour policy?", DOCUMENTS) == ()
    assert named_documents("What did the review say?", DOCUMENTS) == ()


def test_publisher_and_author_lists_are_names_too():
    assert named_documents("What did The Coastal Review publish?", DOCUMENTS) == ("c",)
    assert named_documents("What does Weil argue?", DOCUMENTS) == ("e",)


def test_documents_without_metadata_are_never_named():
    assert named_documents("What do the documents say?", [("d", {}), ("x", {"author": 3})]) == ()


def test_a_surname_inside_another_name_names_nothing():
    # "Institute" ends the Harbour Policy Institute's name, but here it belongs to another one.
    assert named_documents("What did the minister say at the Brookings Institute?",
                           DOCUMENTS) == ()
    assert named_documents("Did Ferreira Shipping win the contract?", DOCUMENTS) == ()
    # Its own words around it, a title, the question's first word, a possessive or punctuation
    # before the next capitalised word still name it.
    assert named_documents("What does Ana Ferreira say?", DOCUMENTS) == ("b",)
    assert named_documents("Does Dr Ferreira agree?", DOCUMENTS) == ("b",)
    assert named_documents("Does Professor Ferreira agree?", DOCUMENTS) == ("b",)
    assert named_documents("Did Mayor Ferreira agree?", DOCUMENTS) == ("b",)
    assert named_documents("Did Lucas Ferreira win?", DOCUMENTS) == ()
    assert named_documents("Ferreira's view of the tolls?", DOCUMENTS) == ("b",)
    assert named_documents("According to Ferreira, Lisbon pays the tolls?", DOCUMENTS) == ("b",)
    assert named_documents("What is the Institute's view of the tolls?", DOCUMENTS) == ("a",)
    assert named_documents("Is the Harbour Policy Institute's view new?", DOCUMENTS) == ("a",)


def test_the_names_are_taken_out_of_what_is_searched():
    names = ["Harbour Policy Institute", "Ana M. Ferreira"]
    assert (without_names("Do the Harbour Policy Institute report and Ferreira agree on tolls?",
                          names) == "Do the report and agree on tolls?")
    assert without_names("Why, according to Ferreira, did the ferry close?",
                         names) == "Why, according to, did the ferry close?"
    assert (without_names("What is Ferreira's view of the tolls?", names)
            == "What is view of the tolls?")
    # A surname inside another name is not hers; a name alone is all there is to search.
    assert (without_names("Did Lucas Ferreira win the contract?", names)
            == "Did Lucas Ferreira win the contract?")
    assert without_names("Ferreira?", names) == "Ferreira?"
    assert without_names("What about tolls?", []) == "What about tolls?"


def test_a_bracketed_short_form_is_a_name_and_so_is_the_name_without_it():
    assert source_names(DOCUMENTS[5][1]) == ["Journal of Coastal Engineering (JCE)",
                                            "Journal of Coastal Engineering", "JCE"]
    assert source_names({"author": "Ana M. Ferreira"}) == ["Ana M. Ferreira"]
    assert named_documents("What does the Journal of Coastal Engineering paper find?",
                           DOCUMENTS) == ("f",)
    assert named_documents("Do JCE and Ferreira agree?", DOCUMENTS) == ("b", "f")
    assert (without_names("Do the Journal of Coastal Engineering paper and Ferreira agree?",
                          source_names(DOCUMENTS[5][1]) + ["Ana M. Ferreira"])
            == "Do the paper and agree?")
