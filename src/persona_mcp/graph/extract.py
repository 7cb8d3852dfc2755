"""Free text into typed memories and the entities they name, by rules (offline).

Each sentence that states something (questions and filler are dropped) is read as

* a **goal** (what the user wants: "I plan to…", "I want to…", "my goal is…") or a
  **task** ("I need to…", "remind me to…", "don't forget…"), which is part of the goal
  before it in the same text;
* **psyche** (who the user is: "I love…", "I prefer…", "I'm a shy person", "my favourite…");
* otherwise an **episode** (what happened). Consecutive episode sentences stay together
  as one episode, and "yesterday", "last week", "3 days ago" move it back in time.

Entities are the people, places, organisations and things a sentence names: family
words and appositions by rule ("my mother Helen", "Helen, my mom", "Mom", "Aunt Rosa"),
a speaker's label ("Caroline: …"), and the spans a named-entity recogniser found (spaCy
when it is installed; capitalised words otherwise). Within one text, one person named
several ways is one entity with aliases. Entities named in one sentence relate to each
other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from persona_mcp import nlp
from persona_mcp.graph import aliases

MemoryKind = Literal["episode", "psyche", "goal"]
EntityKind = Literal["person", "place", "organization", "thing", "event", "animal"]
ENTITY_KINDS: tuple[str, ...] = ("person", "place", "organization", "thing", "event", "animal")
ITEM_KINDS: tuple[str, ...] = ("event", "trait", "preference", "value", "belief", "goal", "task")
MAX_EPISODE_SENTENCES = 3
MAX_EPISODE_CHARS = 600
MAX_ENTITIES_PER_SENTENCE = 8
DAY = 86400.0


@dataclass(frozen=True)
class Span:
    """A named entity a recogniser found: character offsets into the text, and its label
    (spaCy's: PERSON, GPE, ORG, ...)."""

    start: int
    end: int
    label: str


@dataclass
class Entity:
    name: str
    kind: str
    relation: str | None = None
    aliases: list[str] = field(default_factory=list)  # as written, the name first


@dataclass
class Item:
    """One memory to be: its text, type and kind, the entities (indexes) it names."""

    content: str
    memory_type: str
    kind: str
    entities: list[int] = field(default_factory=list)
    offset_seconds: float = 0.0  # when it happened, relative to the text's moment
    part_of: int | None = None  # index of the goal item a task belongs to
    time_phrase: str | None = None


@dataclass(frozen=True)
class Relation:
    source: int  # entity indexes
    target: int
    label: str | None
    item: int  # the item it was read from


@dataclass
class Extraction:
    items: list[Item]
    entities: list[Entity]
    relations: list[Relation]
    extractor: str


# -- what kind of sentence ----------------------------------------------------------------

_I = r"(?:i|we)"
_TASK = re.compile(
    rf"\b{_I}\s+(?:really\s+|still\s+|also\s+)?(?:need|have|got|must|should|ought)\s+to\b|"
    rf"\b{_I}\s+(?:must|should)\b|\bremind\s+me\b|\b(?:don'?t|do\s+not)\s+forget\b|"
    r"^\s*(?:to-?do|task|reminder)\b|\bmust\s+remember\s+to\b",
    re.IGNORECASE,
)
_GOAL = re.compile(
    rf"\b{_I}\s+(?:really\s+|also\s+|finally\s+)?(?:want|plan|intend|hope|aim|mean|wish|"
    r"would\s+like|'d\s+like|am\s+going|'m\s+going|are\s+going|'re\s+going|am\s+planning|"
    r"'m\s+planning|am\s+hoping|'m\s+hoping|am\s+trying|'m\s+trying|am\s+determined|"
    r"'m\s+determined)\s+to\b|"
    rf"\b{_I}(?:'ll|\s+will|\s+shall)\s+(?!never\b|not\b)|"
    r"\b(?:my|our)\s+(?:\w+\s+)?(?:goal|plan|dream|resolution|ambition|aim|project|wish)s?\b|"
    r"\bnext\s+(?:week|month|year|summer|winter|spring|autumn|fall)\s+(?:i|we)\b",
    re.IGNORECASE,
)
_PREFERENCE = re.compile(
    rf"\b{_I}\s+(?:really\s+|absolutely\s+|truly\s+|just\s+|do\s+)?(?:love|like|enjoy|adore|"
    r"hate|dislike|detest|prefer|can'?t\s+stand|am\s+into|'m\s+into|am\s+a\s+fan|"
    r"'m\s+a\s+fan|am\s+not\s+a\s+fan|'m\s+not\s+a\s+fan)\b|\b(?:my|our)\s+favou?rite\b|"
    r"\b(?:i'?m|i\s+am)\s+(?:allergic|vegetarian|vegan)\b",
    re.IGNORECASE,
)
_VALUE = re.compile(
    rf"\b{_I}\s+(?:really\s+|deeply\s+)?(?:value|care\s+(?:deeply\s+)?about|cherish)\b|"
    r"\b(?:family|honesty|freedom|kindness|loyalty)\s+(?:is|are)\s+(?:everything|important|"
    r"what\s+matters)\b",
    re.IGNORECASE,
)
_BELIEF = re.compile(
    rf"\b{_I}\s+(?:really\s+|strongly\s+|firmly\s+)?(?:believe|think\s+that|feel\s+that|"
    r"am\s+convinced|'m\s+convinced)\b",
    re.IGNORECASE,
)
_TRAITS = (
    "shy introverted introvert extroverted extrovert outgoing curious patient impatient "
    "anxious organized organised messy creative stubborn optimistic pessimistic lazy "
    "ambitious kind honest sensitive afraid scared proud competitive perfectionist "
    "spontaneous adventurous cautious calm nervous independent loyal generous talkative "
    "quiet introspective empathetic sociable"
)
_TRAIT = re.compile(
    r"\b(?:i'?m|i\s+am)\s+(?:a\s+|an\s+)?(?:very\s+|quite\s+|really\s+|pretty\s+|so\s+|"
    r"a\s+bit\s+|rather\s+|kind\s+of\s+|always\s+been\s+)?(?:"
    + "|".join(_TRAITS.split())
    + r")\b|\b(?:i'?m|i\s+am)\s+(?:a|an)\s+(?:\w+\s+)?(?:person|introvert|extrovert|"
    r"night\s+owl|early\s+bird|morning\s+person|people\s+person)\b|"
    rf"\b{_I}\s+(?:always|usually|tend\s+to|never|often|rarely|seldom)\b|"
    r"\bi(?:'ve|\s+have)\s+always\s+(?:been|loved|liked|wanted|hated)\b",
    re.IGNORECASE,
)


def classify(sentence: str) -> tuple[str, str]:
    """(memory_type, kind) of a statement: goal/task, psyche (trait, preference, value,
    belief) or episode (event)."""
    text = _SPEAKER.sub("", sentence).replace("’", "'")
    if _TASK.search(text):
        return "goal", "task"
    if _GOAL.search(text):
        return "goal", "goal"
    if _PREFERENCE.search(text):
        return "psyche", "preference"
    if _VALUE.search(text):
        return "psyche", "value"
    if _BELIEF.search(text):
        return "psyche", "belief"
    if _TRAIT.search(text):
        return "psyche", "trait"
    return "episode", "event"


# -- when ---------------------------------------------------------------------------------

_NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
            "seven": 7, "eight": 8, "nine": 9, "ten": 10, "a couple of": 2, "a few": 3}  # fmt: skip
_UNITS = {"day": 1.0, "week": 7.0, "month": 30.0, "year": 365.0}
_AGO = re.compile(
    r"\b(\d+|a couple of|a few|an?|one|two|three|four|five|six|seven|eight|nine|ten)\s+"
    r"(day|week|month|year)s?\s+ago\b",
    re.IGNORECASE,
)
_RELATIVE = (
    (re.compile(r"\bthe\s+day\s+before\s+yesterday\b", re.I), -2.0),
    (re.compile(r"\byesterday\b|\blast\s+night\b", re.I), -1.0),
    (re.compile(r"\blast\s+week(?:end)?\b", re.I), -7.0),
    (re.compile(r"\blast\s+month\b", re.I), -30.0),
    (re.compile(r"\blast\s+(?:year|summer|winter|spring|autumn|fall)\b", re.I), -365.0),
)


def when(sentence: str) -> tuple[float, str | None]:
    """How long before the text's moment a sentence's event happened (seconds, <= 0),
    and the phrase that said so."""
    found = _AGO.search(sentence)
    if found:
        count = found.group(1).lower()
        n = int(count) if count.isdigit() else _NUMBERS.get(count, 1)
        return -n * _UNITS[found.group(2).lower()] * DAY, found.group(0)
    for pattern, days in _RELATIVE:
        match = pattern.search(sentence)
        if match:
            return days * DAY, match.group(0)
    return 0.0, None


# -- entities -----------------------------------------------------------------------------

_NAME = r"[A-Z][\w’'-]*[a-z\d][\w’'-]*(?:\s+[A-Z][\w’'-]*[a-z\d][\w’'-]*)?"
_KIN = aliases.kin_pattern()
_MODIFIER = r"(?:(?:best|older|younger|little|big|elder|late|step|ex|dear|new|old)[- ]?)?"
_MY_KIN = re.compile(
    rf"\b(?i:(my|our)\s+{_MODIFIER}({_KIN}))\b(?:,?\s+(?!(?:I|The|A|And|But)\b)({_NAME}))?"
)
_NAME_MY_KIN = re.compile(rf"\b({_NAME}),\s+(?i:(?:my|our)\s+{_MODIFIER}({_KIN}))\b")
_TITLED = re.compile(r"\b(Aunt|Auntie|Uncle|Cousin|Grandma|Grandpa|Granny|Nana)\s+(" + _NAME + ")")
_NAME_LIKE = re.compile(
    r"(?<![Mm]y )(?<![Oo]ur )\b("
    + "|".join(w.capitalize() for w in sorted(aliases.NAME_LIKE_KIN, key=len, reverse=True))
    + r")\b"
)
_SPEAKER = re.compile(r"^\s*([A-Z][\w’'-]+(?:\s[A-Z][\w’'-]+)?):\s+")
_CAPITALS = re.compile(r"\b[A-Z][a-z][\w’'-]*(?:\s+(?:of\s+|de\s+|the\s+)?[A-Z][\w’'-]+)*")
_NOT_NAMES = frozenset(
    """i i'm i've i'll i'd me my we our you your he she they it this that these those the a
    an and but or so then yes no ok okay oh hey hi hello thanks today tomorrow yesterday
    tonight monday tuesday wednesday thursday friday saturday sunday january february march
    april may june july august september october november december christmas easter
    what when where why how who which there here if also just really maybe well last next
    after before every first finally later still sometimes actually anyway honestly""".split()
)
_SPACY_KINDS = {
    "PERSON": "person",
    "GPE": "place",
    "LOC": "place",
    "FAC": "place",
    "ORG": "organization",
    "PRODUCT": "thing",
    "WORK_OF_ART": "thing",
    "LAW": "thing",
    "LANGUAGE": "thing",
    "EVENT": "event",
}
_PLACE_CUES = frozenset("in at to from near visited visit toward towards into around".split())
_PERSON_CUES = frozenset("with met told called asked and saw friend meet visited".split())


def _clean_name(text: str) -> str:
    name = re.sub(r"^(?:the|a|an)\s+", "", text.strip(), flags=re.IGNORECASE)
    name = re.sub(r"(?:'s|’s|'|’)$", "", name)
    return name.strip(' \t,.;:!?"“”()')


def _is_name(text: str) -> bool:
    words = text.split()
    return bool(words) and aliases.norm(words[0]) not in _NOT_NAMES


class _Entities:
    """The entities of one text, one per person or thing however often it is named."""

    def __init__(self) -> None:
        self.items: list[Entity] = []
        self._by_norm: dict[str, int] = {}
        self._by_relation: dict[str, int] = {}

    def _alias(self, index: int, surface: str) -> None:
        entity = self.items[index]
        if surface and aliases.norm(surface) not in {aliases.norm(a) for a in entity.aliases}:
            entity.aliases.append(surface)
        key = aliases.norm(surface)
        if key and not aliases.is_kin_word(surface):
            self._by_norm.setdefault(key, index)

    def add(
        self, name: str | None, kind: str, relation: str | None = None, surface: str | None = None
    ) -> int:
        """The index of the entity a mention names, made if new."""
        name = _clean_name(name) if name else None
        surface = _clean_name(surface) if surface else None
        index = self._by_norm.get(aliases.norm(name)) if name else None
        known_relation = self._by_relation.get(relation) if relation else None
        if index is None and known_relation is not None:
            current = self.items[known_relation]
            unnamed = aliases.is_kin_word(current.name)
            if name is None or unnamed or relation in aliases.UNIQUE_RELATIONS:
                index = known_relation
                if name and unnamed:
                    current.aliases.insert(0, name)
                    current.name = name
        if index is None:
            display = name or surface or relation or "?"
            index = len(self.items)
            self.items.append(Entity(name=display, kind=kind, relation=relation))
            self._alias(index, display)
        entity = self.items[index]
        if name:
            self._alias(index, name)
        if surface:
            self._alias(index, surface)
        if relation and entity.relation is None:
            entity.relation = relation
        if relation and relation not in self._by_relation:
            self._by_relation[relation] = index
        if entity.kind == "thing" and kind != "thing":
            entity.kind = kind
        return index


def _kin_kind(relation: str) -> str:
    return "animal" if relation in aliases.ANIMALS else "person"


def _sentence_entities(
    sentence: str, offset: int, spans: list[Span] | None, found: _Entities, first: bool
) -> list[int]:
    """The entities one sentence names (indexes into `found`), in order of appearance."""
    hits: list[tuple[int, int]] = []  # (position, entity index)
    taken: list[tuple[int, int]] = []  # character ranges already read as an entity

    def claim(start: int, end: int, index: int) -> None:
        hits.append((start, index))
        taken.append((start, end))

    def free(start: int, end: int) -> bool:
        return all(end <= a or start >= b for a, b in taken)

    speaker = _SPEAKER.match(sentence) if first else None
    if speaker:
        claim(speaker.start(1), speaker.end(1), found.add(speaker.group(1), "person"))
    for match in _MY_KIN.finditer(sentence):
        relation = aliases.relation_of(match.group(2))
        if relation is None:
            continue
        name = match.group(3)
        if name and not _is_name(name):
            name = None
        surface = f"my {match.group(2).lower()}"
        index = found.add(name, _kin_kind(relation), relation, surface)
        claim(match.start(), match.end(3) if name else match.end(2), index)
    for match in _NAME_MY_KIN.finditer(sentence):
        relation = aliases.relation_of(match.group(2))
        if relation is None or not free(match.start(1), match.end(1)):
            continue
        if not _is_name(match.group(1)):
            continue
        surface = f"my {match.group(2).lower()}"
        index = found.add(match.group(1), _kin_kind(relation), relation, surface)
        claim(match.start(1), match.end(), index)
    for match in _TITLED.finditer(sentence):
        relation = aliases.relation_of(match.group(1))
        if relation is None or not free(match.start(), match.end()):
            continue
        index = found.add(match.group(2), "person", relation, match.group(0))
        claim(match.start(), match.end(), index)
    for match in _NAME_LIKE.finditer(sentence):
        if not free(match.start(), match.end()):
            continue
        relation = aliases.relation_of(match.group(1))
        if relation is not None:
            claim(match.start(), match.end(), found.add(None, "person", relation, match.group(1)))
    if spans is not None:
        for span in spans:
            start, end = span.start - offset, span.end - offset
            kind = _SPACY_KINDS.get(span.label)
            if kind is None or start < 0 or end > len(sentence) or not free(start, end):
                continue
            name = _clean_name(sentence[start:end])
            if not name or aliases.is_kin_word(name) or not _is_name(name):
                continue
            titled = _TITLED.match(name)
            if titled:
                relation = aliases.relation_of(titled.group(1))
                claim(start, end, found.add(titled.group(2), "person", relation, name))
                continue
            claim(start, end, found.add(name, kind))
    else:
        for match in _CAPITALS.finditer(sentence):
            start, end = match.start(), match.end()
            if not free(start, end):
                continue
            name = _clean_name(match.group(0))
            head = sentence[:start].rstrip()
            at_start = not head or head.endswith((".", "!", "?", ":", '"', "“"))
            if at_start or not name or aliases.is_kin_word(name) or not _is_name(name):
                continue
            before = head.split()[-1].lower() if head.split() else ""
            kind = (
                "place"
                if before in _PLACE_CUES
                else "person"
                if before in _PERSON_CUES
                else "thing"
            )
            claim(start, end, found.add(name, kind))
    ordered = [index for _, index in sorted(hits)]
    return list(dict.fromkeys(ordered))[:MAX_ENTITIES_PER_SENTENCE]


def _sentences(text: str) -> list[tuple[int, str]]:
    """(offset, sentence) for each sentence of the text."""
    out: list[tuple[int, str]] = []
    for part in nlp.sentences(text):
        start = text.find(part, out[-1][0] + len(out[-1][1]) if out else 0)
        out.append((max(start, 0), part))
    return out


def extract(text: str, spans: list[Span] | None, extractor: str) -> Extraction:
    """Read a text into items, entities and relations (see the module docstring)."""
    found = _Entities()
    items: list[Item] = []
    relations: list[Relation] = []
    last_goal: int | None = None
    open_episode: int | None = None
    for position, (offset, sentence) in enumerate(_sentences(text)):
        line_start = offset == 0 or text[offset - 1] == "\n"
        if nlp.kind_of(_SPEAKER.sub("", sentence)) != "statement":
            open_episode = None
            continue
        memory_type, kind = classify(sentence)
        entity_ids = _sentence_entities(sentence, offset, spans, found, line_start or position == 0)
        shift, phrase = when(sentence)
        if memory_type == "episode" and open_episode is not None:
            episode = items[open_episode]
            sentences_so_far = len(nlp.sentences(episode.content))
            if (
                sentences_so_far < MAX_EPISODE_SENTENCES
                and len(episode.content) + len(sentence) < MAX_EPISODE_CHARS
                and not (phrase and episode.time_phrase and phrase != episode.time_phrase)
            ):
                episode.content = f"{episode.content} {sentence}"
                episode.entities = list(dict.fromkeys([*episode.entities, *entity_ids]))
                if episode.time_phrase is None and phrase:
                    episode.offset_seconds, episode.time_phrase = shift, phrase
                index = open_episode
                _relate(relations, entity_ids, index)
                continue
        item = Item(sentence, memory_type, kind, entity_ids, shift, None, phrase)
        index = len(items)
        items.append(item)
        _relate(relations, entity_ids, index)
        open_episode = index if memory_type == "episode" else None
        if kind == "goal":
            last_goal = index
        elif kind == "task" and last_goal is not None:
            item.part_of = last_goal
    return Extraction(items, found.items, relations, extractor)


def _relate(relations: list[Relation], entity_ids: list[int], item: int) -> None:
    """Entities named in one sentence relate to each other."""
    for i, a in enumerate(entity_ids):
        for b in entity_ids[i + 1 :]:
            if not any({r.source, r.target} == {a, b} and r.item == item for r in relations):
                relations.append(Relation(a, b, None, item))
