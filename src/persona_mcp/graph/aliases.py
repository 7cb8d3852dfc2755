"""Names of entities as the graph compares them, and the words for family and friends.

"Mom", "my mom" and "my mother" name one relation (mother); "Helen" is a name. An
alias is stored under its *norm*: NFC, case-folded, without a leading possessive or
article, a trailing possessive `'s` or surrounding punctuation. A family word stands for
its relation, so "Mom" and "my mother" find the same person.
"""

from __future__ import annotations

import re
import unicodedata

# relation -> the words that name it (the first is how the relation is written)
KIN: dict[str, tuple[str, ...]] = {
    "mother": ("mother", "mom", "mum", "mommy", "mummy", "mama", "mamma", "ma", "mam"),
    "father": ("father", "dad", "daddy", "papa", "pa", "pop"),
    "sister": ("sister", "sis"),
    "brother": ("brother", "bro"),
    "wife": ("wife",),
    "husband": ("husband",),
    "partner": ("partner",),
    "girlfriend": ("girlfriend",),
    "boyfriend": ("boyfriend",),
    "fiancé": ("fiancé", "fiance", "fiancée", "fiancee"),
    "son": ("son",),
    "daughter": ("daughter",),
    "grandmother": ("grandmother", "grandma", "granny", "nana", "gran"),
    "grandfather": ("grandfather", "grandpa", "granddad", "grandad"),
    "aunt": ("aunt", "auntie", "aunty"),
    "uncle": ("uncle",),
    "cousin": ("cousin",),
    "niece": ("niece",),
    "nephew": ("nephew",),
    "boss": ("boss",),
    "manager": ("manager",),
    "friend": ("friend", "best friend", "buddy", "pal"),
    "roommate": ("roommate", "flatmate", "housemate"),
    "neighbour": ("neighbour", "neighbor"),
    "colleague": ("colleague", "coworker", "co-worker"),
    "therapist": ("therapist",),
    "doctor": ("doctor",),
    "teacher": ("teacher",),
    "dog": ("dog", "puppy"),
    "cat": ("cat", "kitten"),
}
# A person has one of these at a time, so "my mother" always names the same one.
UNIQUE_RELATIONS = frozenset(
    {"mother", "father", "wife", "husband", "partner", "girlfriend", "boyfriend", "fiancé",
     "boss", "manager", "therapist"}
)  # fmt: skip
ANIMALS = frozenset({"dog", "cat"})
_WORD_TO_KIN = {word: relation for relation, words in KIN.items() for word in words}
# Family words that, capitalised and on their own, are used as a name ("Mom called").
NAME_LIKE_KIN = frozenset(
    "mom mum mommy mummy mama ma dad daddy papa pa grandma granny nana gran grandpa "
    "granddad grandad".split()
)
_LEADING = re.compile(r"^(?:my|our|the|a|an|his|her|their)\s+", re.IGNORECASE)
_POSSESSIVE = re.compile(r"(?:'s|’s|'|’)$")
_EDGE_PUNCT = " \t\"'“”‘’.,;:!?()[]{}"


def norm(text: str) -> str:
    """The key an alias is stored and looked up under."""
    name = unicodedata.normalize("NFC", text).strip(_EDGE_PUNCT).casefold()
    name = " ".join(name.split())
    name = _LEADING.sub("", name)
    return _POSSESSIVE.sub("", name).strip(_EDGE_PUNCT)


def relation_of(text: str) -> str | None:
    """The relation a family word names ("Mom", "my mother" -> "mother"), else None."""
    return _WORD_TO_KIN.get(norm(text))


def relation_norms(relation: str) -> tuple[str, ...]:
    """Every norm that names a relation ("mother", "mom", "mum", ...)."""
    return tuple(norm(word) for word in KIN.get(relation, (relation,)))


def is_kin_word(text: str) -> bool:
    return norm(text) in _WORD_TO_KIN


def kin_pattern() -> str:
    """A regular expression alternative of every family word, longest first."""
    words = sorted(_WORD_TO_KIN, key=len, reverse=True)
    return "|".join(re.escape(w) for w in words)
