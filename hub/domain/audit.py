"""The audit record and its hash chain (CONTRACT.md section 4).

Each record's ``hash`` is SHA-256 over the canonical JSON of every other member,
``prev_hash`` and ``seq`` included, so that changing, removing, inserting or
reordering any stored record breaks the chain at that record. The first record's
``prev_hash`` is ``GENESIS``. Records cut off the end are detected against signed
checkpoints (``hub.domain.checkpoints``); ``verify_chain`` reports what the rows
themselves prove.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from hub.domain.checkpoints import Checkpoint

GENESIS = "0" * 64

STORED_MEMBERS: Final = (
    "seq",
    "at",
    "kind",
    "requester",
    "source",
    "participant",
    "purpose",
    "actor_role",
    "actor_id",
    "decision",
    "reason",
    "fields_requested",
    "fields_disclosed",
    "withheld",
    "agreement",
    "agreements",
    "consents",
    "disclosure_id",
    "replay_of",
    "prev_hash",
    "hash",
)
"""A record's stored form, as ``ChainVerifier.feed_stored`` takes it: a row of these
members in this order, the actor in two members and each list member as the compact,
key-sorted JSON text the hub writes."""

StoredRow = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """What a use case wants recorded; the chain gives it ``seq``, ``prev_hash`` and ``hash``."""

    at: str
    kind: str
    """``exchange``, or ``replay`` for an ``Idempotency-Key`` answer sent again."""
    requester: str
    source: str
    participant: str
    """The keyed pseudonym, never the INSZ."""
    purpose: str
    actor: Mapping[str, str]
    decision: str
    """An ``Outcome`` value; kept as text so that a tampered row is reported, not crashed on."""
    reason: str | None
    fields_requested: Sequence[str]
    fields_disclosed: Sequence[str]
    withheld: Sequence[Mapping[str, str]]
    agreement: str | None
    agreements: Sequence[str]
    consents: Sequence[str]
    disclosure_id: str | None
    replay_of: int | None = None


@dataclass(frozen=True, slots=True)
class AuditRecord:
    seq: int
    entry: AuditEntry
    prev_hash: str
    hash: str

    def as_dict(self) -> dict[str, Any]:
        """The record as the officer API and the hash see it."""
        return {
            **_entry_dict(self.entry),
            "seq": self.seq,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


def _entry_dict(entry: AuditEntry) -> dict[str, Any]:
    return {
        "at": entry.at,
        "kind": entry.kind,
        "requester": entry.requester,
        "source": entry.source,
        "participant": entry.participant,
        "purpose": entry.purpose,
        "actor": dict(entry.actor),
        "decision": str(entry.decision),
        "reason": entry.reason,
        "fields_requested": _listed(entry.fields_requested),
        "fields_disclosed": _listed(entry.fields_disclosed),
        "withheld": _listed(entry.withheld),
        "agreement": entry.agreement,
        "agreements": _listed(entry.agreements),
        "consents": _listed(entry.consents),
        "disclosure_id": entry.disclosure_id,
        "replay_of": entry.replay_of,
    }


def _listed(members: Iterable[object]) -> object:
    """A list member as hashed and shown. Text stays text: a stored row whose list
    member is not a JSON list (tampered) must not hash like a list; ``list("")``
    would make ``[]`` of it."""
    if isinstance(members, str):
        return members
    return [dict(m) if isinstance(m, dict) else m for m in members]


def canonical(seq: int, entry: AuditEntry, prev_hash: str) -> bytes:
    """The bytes a record's hash is taken over: the JSON of every member but ``hash``,
    keys sorted, no spaces, ASCII only (``json.dumps(..., sort_keys=True,
    separators=(",", ":"), ensure_ascii=True)``). Part of the contract: ``ketenhub audit
    verify`` and offline verifiers recompute exactly these bytes."""
    return _canonical(seq, entry, prev_hash, list_texts(entry))


def _canonical(seq: int, entry: AuditEntry, prev_hash: str, lists: ListTexts | None) -> bytes:
    if lists is not None:
        try:
            return _plain_body(seq, entry, prev_hash, lists).encode()
        except (TypeError, KeyError):
            pass  # a member not in the form the hub writes: the general encoder decides
    body = {**_entry_dict(entry), "seq": seq, "prev_hash": prev_hash}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def chain_hash(seq: int, entry: AuditEntry, prev_hash: str) -> str:
    return hashlib.sha256(canonical(seq, entry, prev_hash)).hexdigest()


def link(seq: int, entry: AuditEntry, prev_hash: str) -> AuditRecord:
    """Append ``entry`` after a record whose hash is ``prev_hash``."""
    return link_stored(seq, entry, prev_hash)[0]


def link_stored(
    seq: int, entry: AuditEntry, prev_hash: str
) -> tuple[AuditRecord, ListTexts | None]:
    """``link``, and the entry's ``list_texts`` it hashed: what the store writes for those
    members, made once for both (None: the store encodes them itself)."""
    lists = list_texts(entry)
    digest = hashlib.sha256(_canonical(seq, entry, prev_hash, lists)).hexdigest()
    return AuditRecord(seq, entry, prev_hash, digest), lists


ListTexts = tuple[str, str, str, str, str]
"""``fields_requested``, ``fields_disclosed``, ``withheld``, ``agreements``, ``consents``
as compact, key-sorted ASCII JSON: each list member as it is stored and as it is hashed."""


def list_texts(entry: AuditEntry) -> ListTexts | None:
    """The entry's list members as stored and hashed (``ListTexts``), or None when one is
    not a list (or tuple) of text, or of ``{"field", "reason"}`` dicts of text for
    ``withheld``; the general encoder (``json.dumps``) then takes them.

    Written out because every append both stores and hashes these: six ``json.dumps``
    calls cost about 20 µs a record, this and ``_plain_body`` about 4 µs. The text is the
    encoder's own: ``json.dumps`` of a list of text is ``[`` + each item through
    ``encode_basestring_ascii``, joined by ``,`` + ``]``.
    """
    try:
        return (
            _text_list(entry.fields_requested),
            _text_list(entry.fields_disclosed),
            _withheld_list(entry.withheld),
            _text_list(entry.agreements),
            _text_list(entry.consents),
        )
    except (TypeError, KeyError):
        return None


def _text_list(members: Sequence[str]) -> str:
    if type(members) is not list and type(members) is not tuple:
        raise TypeError(members)  # a str or another iterable: json.dumps tells
    return "[" + ",".join(map(encode_basestring_ascii, members)) + "]"  # TypeError: not text


def _withheld_list(members: Sequence[Mapping[str, str]]) -> str:
    if type(members) is not list and type(members) is not tuple:
        raise TypeError(members)
    quote, items = encode_basestring_ascii, []
    for m in members:
        if type(m) is not dict or m.keys() != _WITHHELD_KEYS:
            raise TypeError(m)
        items.append(f'{{"field":{quote(m["field"])},"reason":{quote(m["reason"])}}}')
    return "[" + ",".join(items) + "]"


_WITHHELD_KEYS: Final = frozenset({"field", "reason"})
_ACTOR_KEYS: Final = frozenset({"id", "role"})


def _plain_body(seq: int, entry: AuditEntry, prev_hash: str, lists: ListTexts) -> str:
    """``canonical``'s text written out (keys in sorted order), for an entry whose list
    members are ``lists``. Raises ``TypeError`` (or ``KeyError``) for a member that is not
    text, None or an int where those are expected: ``json.dumps`` decides those."""
    actor, replay_of = entry.actor, entry.replay_of
    if type(actor) is not dict or actor.keys() != _ACTOR_KEYS or type(seq) is not int:
        raise TypeError(actor)
    if replay_of is not None and type(replay_of) is not int:
        raise TypeError(replay_of)  # an int subclass (bool) has a JSON text of its own
    quote = encode_basestring_ascii
    reason, agreement, disclosure_id = entry.reason, entry.agreement, entry.disclosure_id
    fields_requested, fields_disclosed, withheld, agreements, consents = lists
    return (
        f'{{"actor":{{"id":{quote(actor["id"])},"role":{quote(actor["role"])}}},'
        f'"agreement":{"null" if agreement is None else quote(agreement)},'
        f'"agreements":{agreements},"at":{quote(entry.at)},"consents":{consents},'
        f'"decision":{quote(str(entry.decision))},'
        f'"disclosure_id":{"null" if disclosure_id is None else quote(disclosure_id)},'
        f'"fields_disclosed":{fields_disclosed},"fields_requested":{fields_requested},'
        f'"kind":{quote(entry.kind)},"participant":{quote(entry.participant)},'
        f'"prev_hash":{quote(prev_hash)},"purpose":{quote(entry.purpose)},'
        f'"reason":{"null" if reason is None else quote(reason)},'
        f'"replay_of":{"null" if replay_of is None else replay_of},'
        f'"requester":{quote(entry.requester)},"seq":{seq},"source":{quote(entry.source)},'
        f'"withheld":{withheld}}}'
    )


@dataclass(frozen=True, slots=True)
class ChainReport:
    ok: bool
    entries: int
    head: str
    first_bad_seq: int | None = None
    problem: str | None = None
    checkpoint: Checkpoint | None = None
    """The newest signed checkpoint the log was found to hold (``hub.domain.checkpoints``)."""

    def as_dict(self) -> dict[str, Any]:
        checkpoint = None if self.checkpoint is None else self.checkpoint.as_dict()
        if self.ok:
            return {
                "ok": True,
                "entries": self.entries,
                "head": self.head,
                "checkpoint": checkpoint,
            }
        return {
            "ok": False,
            "entries": self.entries,
            "head": self.head,
            "first_bad_seq": self.first_bad_seq,
            "problem": self.problem,
            "checkpoint": checkpoint,
        }


class ChainVerifier:
    """Folds records in stored order; ``feed`` stops being useful after the first fault.

    Incremental so that a log of millions of rows is checked while it streams. It may
    start inside the log (``expected_seq``, ``prev``): ``join_segments`` then says what
    stretches checked apart prove together.
    """

    def __init__(self, *, expected_seq: int = 1, prev: str | None = GENESIS) -> None:
        self._expected_seq = expected_seq
        self._prev = prev if prev is not None and _HEX64.fullmatch(prev) else None
        """What a record's ``prev_hash`` must be: the hash of the last record accepted, or
        the start it was given; hex or None (no start known: nothing links to it)."""
        self._count = 0
        self.fault: tuple[int, str] | None = None
        self._texts = _TextMemo()
        self._lists = _ListMemo()

    @property
    def expected_seq(self) -> int:
        return self._expected_seq

    def feed(self, record: AuditRecord) -> bool:
        if self.fault is not None:
            return False
        self._count += 1
        expected = self._expected_seq
        if record.seq != expected:
            # The record standing where seq `expected` belongs is wrong (or missing).
            self.fault = (expected, _wrong_seq(expected, record.seq))
        elif record.prev_hash != self._prev:
            self.fault = (record.seq, _BROKEN_LINK)
        elif chain_hash(record.seq, record.entry, record.prev_hash) != record.hash:
            self.fault = (record.seq, _CHANGED)
        else:
            self._expected_seq += 1
            self._prev = record.hash
            return True
        return False

    def feed_stored(
        self, rows: Iterable[StoredRow], decode: Callable[[StoredRow], AuditRecord]
    ) -> bool:
        """``feed`` for rows in the stored form (``STORED_MEMBERS``), without decoding them.

        A row whose seq, link and hash check out on its stored text is taken as it is;
        any other row is decoded with ``decode`` (the store's own reading of a row) and
        fed, so that faults, and anything the hub did not write itself, are judged and
        reported exactly as ``feed`` does.
        """
        if self.fault is not None:
            return False
        expected, prev, count = self._expected_seq, self._prev, self._count
        texts, lists, quote, sha256 = self._texts, self._lists, encode_basestring_ascii, _SHA256
        for row in rows:
            # ``_stored_body`` written out: this loop is the whole cost of verifying a log.
            try:
                (
                    seq, at, kind, requester, source, participant, purpose, actor_role,
                    actor_id, decision, reason, fields_requested, fields_disclosed, withheld,
                    agreement, agreements, consents, disclosure_id, replay_of, prev_hash, hash_,
                ) = row  # fmt: skip
                if (
                    seq == expected
                    and prev_hash == prev  # a hash this verifier checked, or hex it was given
                    and type(seq) is int
                    and type(decision) is str
                    and (replay_of is None or type(replay_of) is int)
                ):
                    digest = sha256.copy()
                    digest.update(
                        f'{{"actor":{{"id":{texts[actor_id]},"role":{texts[actor_role]}}},'
                        f'"agreement":{texts[agreement]},"agreements":{lists[agreements]},'
                        f'"at":{quote(at)},"consents":{lists[consents]},'
                        f'"decision":{texts[decision]},"disclosure_id":'
                        f"{'null' if disclosure_id is None else quote(disclosure_id)},"
                        f'"fields_disclosed":{lists[fields_disclosed]},'
                        f'"fields_requested":{lists[fields_requested]},"kind":{texts[kind]},'
                        f'"participant":{quote(participant)},"prev_hash":"{prev_hash}",'
                        f'"purpose":{texts[purpose]},"reason":{texts[reason]},'
                        f'"replay_of":{"null" if replay_of is None else replay_of},'
                        f'"requester":{texts[requester]},"seq":{seq},"source":{texts[source]},'
                        f'"withheld":{lists[withheld]}}}'.encode()
                    )
                    if digest.hexdigest() == hash_:
                        expected += 1
                        prev = hash_
                        count += 1
                        continue
            except (TypeError, ValueError, RecursionError):
                pass  # not as the hub writes it: judged on its decoded form
            self._expected_seq, self._prev, self._count = expected, prev, count
            if not self.feed(decode(row)):
                return False
            expected, prev, count = self._expected_seq, self._prev, self._count
        self._expected_seq, self._prev, self._count = expected, prev, count
        return True

    def report(self) -> ChainReport:
        head = "" if self._prev is None else self._prev
        if self.fault is None:
            return ChainReport(ok=True, entries=self._count, head=head)
        seq, problem = self.fault
        return ChainReport(
            ok=False, entries=self._count, head=head, first_bad_seq=seq, problem=problem
        )


_BROKEN_LINK = "prev_hash does not match the previous record"
_CHANGED = "the record's content does not match its hash"


def _wrong_seq(expected: int, found: object) -> str:
    return f"expected seq {expected}, found {found}"


class _TextMemo(dict[str | None, str]):
    """A text member (or None) as canonical JSON; anything else is not the hub's."""

    def __init__(self) -> None:
        super().__init__({None: "null"})

    def __missing__(self, key: object) -> str:
        if type(key) is not str:
            raise TypeError(key)
        if len(self) > _MEMO_LIMIT:
            self.clear()
            self[None] = "null"
        value = self[key] = encode_basestring_ascii(key)
        return value


class _ListMemo(dict[str, str]):
    """Stored list members that are already canonical JSON, as themselves.

    Only text that encodes back to itself is taken: anything else (other spacing or
    key order, escapes, not JSON) raises, and the row is judged on its decoded form.
    """

    def __missing__(self, key: object) -> str:
        if type(key) is not str:
            raise TypeError(key)
        if _PLAIN_LIST.fullmatch(key) is None:
            decoded = json.loads(key)
            if not isinstance(decoded, list) or _canonical_json(_listed(decoded)) != key:
                raise ValueError(key)
        if len(self) > _MEMO_LIMIT:
            self.clear()
        self[key] = key
        return key


_MEMO_LIMIT = 200_000
_SHA256 = hashlib.sha256()
"""Copied per record: cheaper than making a new one."""
_HEX64 = re.compile(r"[0-9a-f]{64}")
_PLAIN = r'"[ !#-\[\]-~]*"'
_PLAIN_LIST = re.compile(rf"\[(?:{_PLAIN}(?:,{_PLAIN})*)?\]")
"""A JSON list of strings that need no escaping: its own canonical form."""


def _canonical_json(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


class StoredHasher:
    """``chain_hash`` of rows in the stored form (``STORED_MEMBERS``; the ``hash`` member
    is not read) whose members are as the hub writes them; it remembers the texts seen.

    Raises ``TypeError`` or ``ValueError`` for a member the hub would not have written.
    """

    def __init__(self) -> None:
        self._texts = _TextMemo()
        self._lists = _ListMemo()

    def __call__(self, row: StoredRow) -> str:
        body = _stored_body(row, self._texts, self._lists)
        return hashlib.sha256(body.encode()).hexdigest()


def stored_chain_hash(row: StoredRow) -> str:
    """``StoredHasher`` for one row."""
    return StoredHasher()(row)


def _stored_body(row: StoredRow, texts: _TextMemo, lists: _ListMemo) -> str:
    """``canonical`` of a stored row, assembled from its stored text without decoding it.

    These are the bytes ``json.dumps`` makes of the decoded record: each text through the
    encoder's own ``encode_basestring_ascii``, each list member only when it is its own
    canonical JSON. Raises ``TypeError`` or ``ValueError`` for anything else.
    """
    (
        seq, at, kind, requester, source, participant, purpose, actor_role, actor_id,
        decision, reason, fields_requested, fields_disclosed, withheld, agreement,
        agreements, consents, disclosure_id, replay_of, prev_hash, _,
    ) = row  # fmt: skip
    if type(seq) is not int or type(decision) is not str:
        raise TypeError(seq)  # canonical takes str(decision)
    if replay_of is not None and type(replay_of) is not int:
        raise TypeError(replay_of)
    quote = encode_basestring_ascii
    return (
        f'{{"actor":{{"id":{quote(actor_id)},"role":{texts[actor_role]}}},'
        f'"agreement":{texts[agreement]},"agreements":{lists[agreements]},'
        f'"at":{quote(at)},"consents":{lists[consents]},"decision":{texts[decision]},'
        f'"disclosure_id":{"null" if disclosure_id is None else quote(disclosure_id)},'
        f'"fields_disclosed":{lists[fields_disclosed]},'
        f'"fields_requested":{lists[fields_requested]},"kind":{texts[kind]},'
        f'"participant":{quote(participant)},"prev_hash":{quote(prev_hash)},'
        f'"purpose":{texts[purpose]},"reason":{texts[reason]},'
        f'"replay_of":{"null" if replay_of is None else replay_of},'
        f'"requester":{texts[requester]},"seq":{seq},"source":{texts[source]},'
        f'"withheld":{lists[withheld]}}}'
    )


def verify_chain(records: Iterable[AuditRecord]) -> ChainReport:
    verifier = ChainVerifier()
    for record in records:
        if not verifier.feed(record):
            break
    return verifier.report()


@dataclass(frozen=True, slots=True)
class Segment:
    """A stretch of the log checked on its own, by a ``ChainVerifier`` that assumed it
    starts at ``start_seq`` after a record whose hash is ``start_prev`` (the hash stored
    on seq ``start_seq - 1``, None when there is no such text)."""

    start_seq: int
    start_prev: str | None
    report: ChainReport
    """What that verifier reported: it stops at the stretch's first fault."""
    end_seq: int
    """The seq the verifier expected next when it stopped."""
    first_seq: int | None
    """The first record's seq as read, None when the stretch is empty."""
    first_prev_hash: str | None
    """The first record's ``prev_hash`` when it is text."""


def join_segments(segments: Iterable[Segment]) -> ChainReport | None:
    """What one ``ChainVerifier`` fed every stretch in order would report.

    A stretch whose assumed start is where the ones before it ended is taken as checked.
    Otherwise its first record is judged against the true start: it cannot then pass
    (the assumed start is the true one whenever it could), so it is the first fault.
    None when the stretches cannot tell, which the checks above leave for a damaged
    log only; the caller then folds the whole log in one pass.
    """
    expected, prev, count = 1, GENESIS, 0
    for segment in segments:
        if segment.first_seq is None:
            continue
        if segment.start_seq == expected and segment.start_prev == prev:
            count += segment.report.entries
            if not segment.report.ok:
                return ChainReport(
                    ok=False,
                    entries=count,
                    head=segment.report.head,
                    first_bad_seq=segment.report.first_bad_seq,
                    problem=segment.report.problem,
                )
            expected, prev = segment.end_seq, segment.report.head
            continue
        count += 1
        if segment.first_seq != expected:
            bad, problem = expected, _wrong_seq(expected, segment.first_seq)
        elif segment.first_prev_hash != prev:
            bad, problem = segment.first_seq, _BROKEN_LINK
        else:
            return None
        return ChainReport(ok=False, entries=count, head=prev, first_bad_seq=bad, problem=problem)
    return ChainReport(ok=True, entries=count, head=prev)
