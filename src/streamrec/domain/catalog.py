"""Catalog: item records from ``item_upsert`` stream records, and content similarity.

Ingest side (:class:`CatalogService`, in the ingest function): a batch's upserts are
reduced to the latest record per item (by timestamp, then stream order), compared with the
stored records, and written in a crash-safe order:

1. the document count (one guarded ADD for the batch's new items, as the count rows), and
   each changed token's count of holders (guarded the same way: its document frequency,
   which the posting, capped at ``posting_limit`` ids, cannot give);
2. the token postings (set ADD/DELETE: repeating them changes nothing);
3. the records, each conditional on the stored timestamp it was planned against;
4. the announcement on the changed-items stream of every upserted item whose content
   changed (:func:`same_content`).

A record whose tokens are the stored record's (a price or stock change, the most frequent
edits) posts nothing and keeps the stored norm: its tokens were posted before the stored
record was written. One that leaves the tokens, category and stock as stored (a price
change) is not announced: the similarity side derives nothing else from a record.
A record older than the stored one changes nothing (late arrival) and one with the same
timestamp is a re-delivery, but both are announced (harmless): the stored record's own
announcement may have been lost, and a re-drive of its record then repairs the content
rows, even after a price change that was not announced. A crash before
step 3 replans the same writes; a lost race on step 3 (another shard wrote the item)
fails the batch, and the retry replans against the new record.

Similarity side (:class:`ContentIndex`, in the similarity function): for each announced
item X, the postings of X's tokens give the document frequencies and the candidates (every
item sharing a token); the ``content_candidates`` best by shared idf^2 have their records
read, and the exact TF-IDF cosine (streamrec_core.content) picks X's ``content_per_item``
closest items. X is then merged into the content lists of its ``content_merge_limit``
closest items, so that a new item shows up beside existing similar ones at once. Work per
item is bounded by its tokens and the posting limit, never by the catalog's size.
When X's tokens or category changed, the rows that hold X get its new score and category,
or lose it: those X's previous list named and those X's row records as its ``holders``
(lists are not symmetric): a row written with X in its list is recorded in X's row, written
in the same batch, and a row that drops X is taken out of X's record. A candidate's norm
is the one computed when it was written, unless the catalog has since grown to
``NORM_REFRESH_GROWTH`` times the document count it was computed at: then it is computed
again from today's document frequencies (its tokens' postings, one more read) and written
back. Without that, the items of a bulk load's first batches, normed against a catalog of
a few hundred items, would keep norms far below their look-alikes' and outscore them (an
item is refreshed at most log2 of the catalog's growth after it times).

The item's catalog stock decides the ``#out_of_stock`` row of the similarity table.
"""

from __future__ import annotations

import json
import time
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace

import numpy as np
from streamrec_core import content_cosine, idf, overlap_scores, term_counts, tfidf_norm, top_k

from streamrec.domain.model import (
    NOT_YET_LISTED,
    OUT_OF_STOCK_ROW,
    POSTING_COUNT,
    CatalogItem,
    CatalogTally,
    Delta,
    Neighbour,
    PopularList,
    Posting,
    SimilarityRow,
)
from streamrec.events import ItemUpsert
from streamrec.repositories.base import (
    CatalogRepository,
    ChangePublisher,
    ConcurrentUpdateError,
    SimilarityRepository,
    compare_and_swap,
)
from streamrec.settings import Settings

DOCUMENTS = "documents"
NO_POSTING = Posting()
# The holders an item's row records (the rows whose content lists hold it), most recent
# kept: a row pushed out of a widely held item's record keeps the item's entry unchanged
# when the item's text changes, until its own item is announced.
CONTENT_HOLDERS_KEPT = 50
# The former categories an item's record remembers (CatalogItem.former_categories): an item
# moved through more in quick succession, before the similarity function read its record,
# may stay in the popular list of one moved through earlier.
FORMER_CATEGORIES_KEPT = 5
# A stored norm is computed again once the catalog has grown to this many times the
# document count it was computed at (a rare token's idf has then risen by ln 2 at most).
NORM_REFRESH_GROWTH = 2.0


@dataclass(frozen=True)
class SequencedUpsert:
    """A validated catalog record and the sequence key of the Kinesis record carrying it."""

    sequence: str
    upsert: ItemUpsert


@dataclass
class CatalogOutcome:
    written: list[str] = field(default_factory=list)  # new or newer records stored
    # Older than the stored record, ignored: (item id, the record's timestamp, the stored one's).
    stale: list[tuple[str, float, float]] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)  # already stored (re-delivery)
    superseded: int = 0  # records replaced by a later one of the same item in the batch
    # Written items whose content (tokens, category, stock) is as stored: not announced.
    same_content: list[str] = field(default_factory=list)
    # (item id, sequence, new category) of each written item whose category changed, and of
    # each re-delivered record stored by an earlier attempt: its item-stats row takes it
    # (IngestService.recategorise; a repeat changes nothing).
    recategorised: list[tuple[str, str, str]] = field(default_factory=list)


def catalog_item(upsert: ItemUpsert) -> CatalogItem:
    """The record to store (its norm is set once the document frequencies are known)."""
    return CatalogItem(
        item_id=upsert.item_id,
        title=upsert.title,
        category=upsert.category,
        price=upsert.price,
        in_stock=upsert.in_stock,
        tags=list(upsert.tags),
        timestamp=upsert.timestamp,
        terms=term_counts(upsert.title, upsert.category, upsert.tags),
    )


def same_fields(stored: CatalogItem, record: CatalogItem) -> bool:
    """Whether two records of an item say the same (title, category, price, stock, tags)."""
    return (stored.title, stored.category, stored.price, stored.in_stock, list(stored.tags)) == (
        record.title,
        record.category,
        record.price,
        record.in_stock,
        list(record.tags),
    )


def same_content(stored: CatalogItem | None, record: CatalogItem) -> bool:
    """Whether ``record`` leaves what the similarity side derives from an item as
    ``stored`` had it: its tokens (content lists, postings, norm), category (its row's) and
    stock (``#out_of_stock``). A change of price alone does."""
    return stored is not None and (stored.terms, stored.category, stored.in_stock) == (
        record.terms,
        record.category,
        record.in_stock,
    )


def latest_per_item(records: Iterable[SequencedUpsert]) -> tuple[dict[str, SequencedUpsert], int]:
    """The latest record of each item (timestamp first, stream order on ties) and how many
    records were superseded within the batch."""
    latest: dict[str, SequencedUpsert] = {}
    superseded = 0
    for record in records:
        item = record.upsert.item_id
        current = latest.get(item)
        if current is not None:
            superseded += 1
            if (record.upsert.timestamp, record.sequence) < (current.upsert.timestamp, current.sequence):
                continue
        latest[item] = record
    return latest, superseded


def _written_after(stored: CatalogItem, record: CatalogItem) -> bool:
    """Whether the stored record was written by a later record of the same shard."""
    return stored.shard == record.shard != "" and stored.sequence > record.sequence


def former_categories(stored: CatalogItem | None, record: CatalogItem) -> list[str]:
    """The categories an item replacing ``stored`` by ``record`` was in before (most recent
    last, ``FORMER_CATEGORIES_KEPT`` at most, never its new one). Kept on the record, not
    only on the change: the similarity function may read a later record of the item than
    the one that moved it (a price change written in between) and must still take it out of
    the lists of its old category."""
    if stored is None:
        return []
    newest_first = dict.fromkeys(reversed([*stored.former_categories, stored.category]))
    kept = [category for category in newest_first if category != record.category]
    return kept[:FORMER_CATEGORIES_KEPT][::-1]


def _fields_of(record: SequencedUpsert, shard: str) -> CatalogItem:
    """A record's fields as :func:`_replaces` compares them (its tokens not counted)."""
    upsert = record.upsert
    return CatalogItem(
        upsert.item_id,
        upsert.title,
        upsert.category,
        upsert.price,
        upsert.in_stock,
        list(upsert.tags),
        upsert.timestamp,
        shard=shard,
        sequence=record.sequence,
    )


@dataclass(frozen=True)
class Replayed:
    """What an item's records of a batch make of it taken one by one after its stored
    record, as a batch split anywhere (a bisected retry) or re-delivered takes them, so that
    they are the same however the batch was cut: when it first came into stock
    (``listed_at``) and the sequence key of the last record that moved it to another
    category (``moved_by``, "" when none did)."""

    listed_at: float
    moved_by: str


def replay(stored: CatalogItem | None, chain: Sequence[CatalogItem]) -> Replayed:
    """Take an item's records of a batch (``chain``, in stream order) one by one after the
    ``stored`` one, each that replaces the record before it (a stale one never does).

    ``listed_at`` is the timestamp of the first such record in stock (:data:`NOT_YET_LISTED`
    until one came; a row stored before ``listed_at`` was kept, 0, keeps 0). Each replacing
    record in another category than the one before it moves the item: two records of a new
    item in one batch (c1, then c2) move it from c1 as two batches would, so the item-stats
    row takes c2. (The categories it passed through within the batch are not former ones:
    never stored, no list took the item under them.)"""
    current = stored
    listed = stored.listed_at if stored is not None else NOT_YET_LISTED
    moved_by = ""
    for record in chain:
        if not _replaces(current, record):
            continue
        if current is not None and current.category != record.category:
            moved_by = record.sequence
        if listed == NOT_YET_LISTED and record.in_stock:
            listed = record.timestamp
        current = record
    return Replayed(listed, moved_by)


def _take_replayed(new: CatalogItem, old: CatalogItem | None, replayed: Replayed) -> None:
    """Give the record to store what its batch's records made of the item (:func:`replay`),
    and the categories it was in before (:func:`former_categories`)."""
    new.listed_at = replayed.listed_at
    new.moved_by = replayed.moved_by
    new.former_categories = former_categories(old, new)


def _as_stored(record: SequencedUpsert, shard: str) -> CatalogItem:
    """The catalog item a record of ``shard`` would store (its tokens counted)."""
    return replace(catalog_item(record.upsert), shard=shard, sequence=record.sequence)


def _replaces(current: CatalogItem | None, record: CatalogItem) -> bool:
    """Whether ``record`` replaces the item's ``current`` record: it is newer, or as old with
    other fields and not a re-delivery of a record older than the current one."""
    if current is None or record.timestamp > current.timestamp:
        return True
    return (
        record.timestamp == current.timestamp
        and not same_fields(current, record)
        and not _written_after(current, record)
    )


def holder_deltas(stored: CatalogItem | None, records: Sequence[CatalogItem]) -> dict[str, list[Delta]]:
    """The changes to each token's count of holders that one item's ``records`` (a batch's,
    in stream order, each with its ``sequence``) make, starting from its ``stored`` record:
    each record that replaces the one before it adds +1 for the tokens it gains and -1 for
    those it loses, under its own sequence number. Per record, not per batch (one net change
    for the batch's latest record): a bisected or retried batch then computes the same
    change under the same sequence number for every record, which the per-shard guards need
    to count each exactly once."""
    deltas: dict[str, list[Delta]] = defaultdict(list)
    current = stored
    for record in records:
        if not _replaces(current, record):
            continue
        before, after = set(current.terms if current else ()), set(record.terms)
        for token in sorted(after - before):
            deltas[token].append((record.sequence, POSTING_COUNT, 1.0))
        for token in sorted(before - after):
            deltas[token].append((record.sequence, POSTING_COUNT, -1.0))
        current = record
    return deltas


def _norm(item: CatalogItem, frequencies: Mapping[str, int], documents: int) -> float:
    """The norm of ``item``'s TF-IDF vector in a catalog of ``documents`` items where its
    tokens have the document ``frequencies`` (at least 1 each: the item itself)."""
    tokens = sorted(item.terms)
    if not tokens:
        return 0.0
    counts = np.array([item.terms[t] for t in tokens], dtype=np.float64)
    df = np.array([max(frequencies.get(t, 1), 1) for t in tokens], dtype=np.float64)
    return tfidf_norm(counts, idf(df, documents))


@dataclass
class CatalogService:
    settings: Settings
    catalog: CatalogRepository
    changes: ChangePublisher

    def upsert(self, records: Sequence[SequencedUpsert], shard: str) -> CatalogOutcome:
        """Apply one batch of one shard's catalog records (in sequence order)."""
        outcome = CatalogOutcome()
        if not records:
            return outcome
        latest, outcome.superseded = latest_per_item(records)
        stored = self.catalog.get_many(latest, consistent=True)
        in_order: dict[str, list[CatalogItem]] = defaultdict(list)
        for record in sorted(records, key=lambda r: r.sequence):
            in_order[record.upsert.item_id].append(_fields_of(record, shard))
        replayed = {item_id: replay(stored.get(item_id), chain) for item_id, chain in in_order.items()}
        writes: list[tuple[SequencedUpsert, CatalogItem, CatalogItem | None]] = []
        relisted: set[str] = set()
        for item_id in sorted(latest):
            record, old, taken = latest[item_id], stored.get(item_id), replayed[item_id]
            new = _as_stored(record, shard)
            if old is not None and old.timestamp > new.timestamp:
                outcome.stale.append((item_id, new.timestamp, old.timestamp))
            elif (
                not _replaces(old, new)
                and old is not None
                and (old.listed_at == NOT_YET_LISTED != taken.listed_at or taken.moved_by)
            ):
                # The batch's latest record says what the stored one says (at its time),
                # but one between said otherwise (A, B, A at one time): taken record by
                # record, as a split batch takes them, the item came into stock (B in
                # stock), or moved to B's category and back. Stored as such, and announced.
                _take_replayed(new, old, taken)
                writes.append((record, new, old))
                relisted.add(item_id)
            elif not _replaces(old, new):
                # The stored record, or (other fields) one written after it on this shard:
                # a re-delivery (a Lambda retry or bisected half) of an earlier record.
                outcome.duplicates.append(item_id)
                if old is not None and old.moved_by and (old.shard, old.sequence) == (shard, new.sequence):
                    # This very record, stored by an attempt that failed after it, ends a
                    # move: the category may not have reached the item-stats row (a guarded
                    # repeat, under the sequence of the record that moved the item).
                    outcome.recategorised.append((item_id, old.moved_by, new.category))
            else:
                # Newer, or as old with other fields: a later record in stream order (an
                # item's records share a shard, their partition key being its id), e.g. two
                # lines of one `catalog load` file that fell into different batches.
                _take_replayed(new, old, taken)
                writes.append((record, new, old))
        # Each item's records of the batch, in stream order (a written item's latest one as
        # built above), from which its tokens' counts of holders change record by record.
        # Every item's, not only the written ones': an item whose latest record is the
        # stored one may have changed in between (Lamp, Tent, Lamp), and a bisected retry
        # of the half holding the change alone writes it; its counts must then be those
        # this attempt counted under the same sequence numbers, or the guards (moved past
        # the change by another item's record) would take its +1 as done and not its -1.
        built = {new.sequence: new for _, new, _ in writes}
        chains: dict[str, list[CatalogItem]] = defaultdict(list)
        for record in sorted(records, key=lambda r: r.sequence):
            chains[record.upsert.item_id].append(built.get(record.sequence) or _as_stored(record, shard))
        gathered: dict[str, list[Delta]] = defaultdict(list)
        for item_id in sorted(latest):
            for token, token_deltas in holder_deltas(stored.get(item_id), chains[item_id]).items():
                gathered[token] += token_deltas
        counts = {token: sorted(d) for token, d in gathered.items()}
        if writes:
            self._write(writes, counts, shard)
        elif counts:
            self.catalog.count_postings(counts, shard)
        outcome.written = [new.item_id for _, new, _ in writes]
        outcome.recategorised += [
            (new.item_id, new.moved_by, new.category) for _, new, _ in writes if new.moved_by
        ]
        outcome.recategorised.sort(key=lambda change: change[0])
        outcome.same_content = [new.item_id for _, new, old in writes if same_content(old, new)]
        # Re-deliveries and stale records too: the record is already stored, but its first
        # announcement may have been lost (a batch given up after its writes, a similarity
        # batch dead-lettered); announcing again is harmless and lets a re-drive repair it.
        stale = {item_id for item_id, _, _ in outcome.stale}
        announced = (
            (set(outcome.written) - set(outcome.same_content)) | set(outcome.duplicates) | stale | relisted
        )
        if announced:
            self.changes.publish((), set(), (), announced)
        return outcome

    def _write(
        self,
        writes: list[tuple[SequencedUpsert, CatalogItem, CatalogItem | None]],
        counts: Mapping[str, Sequence[Delta]],
        shard: str,
    ) -> None:
        new_items = sorted((record.sequence, new.item_id) for record, new, old in writes if old is None)
        self.catalog.add_documents([(seq, DOCUMENTS, 1.0) for seq, _ in new_items], shard)
        add: dict[str, set[str]] = defaultdict(set)
        remove: dict[str, set[str]] = defaultdict(set)
        # Records with the stored record's tokens post nothing: the stored record's tokens
        # were posted before it was written (this order), and it keeps its norm.
        for _, new, old in writes:
            if old is not None and old.terms == new.terms:
                continue
            for token in new.terms:
                add[token].add(new.item_id)
            for token in set(old.terms if old else ()) - set(new.terms):
                remove[token].add(new.item_id)
        # Each token's count of holders (past the posting limit too), before the postings.
        self.catalog.count_postings(counts, shard)
        frequencies = self.catalog.update_postings(add, remove, self.settings.posting_limit)
        documents = self.catalog.documents()
        for _, new, old in writes:
            if old is not None and old.terms == new.terms:
                new.norm, new.norm_documents = old.norm, old.norm_documents
                continue
            df = {t: frequencies.get(t, 1) for t in new.terms}
            new.norm, new.norm_documents = _norm(new, df, documents), float(documents)
        conflicts = self.catalog.put_many([(new, old.timestamp if old else None) for _, new, old in writes])
        if conflicts:
            # Another shard wrote these items meanwhile: the retried batch replans them.
            raise ConcurrentUpdateError(f"catalog records changed concurrently: {', '.join(conflicts[:5])}")


def record_digest(item: CatalogItem) -> int:
    """A digest (never 0) of what an item's content scores are computed from: its tokens
    and category."""
    text = json.dumps([sorted(item.terms.items()), item.category], separators=(",", ":"))
    return zlib.crc32(text.encode()) or 1


def _record_holders(rows: Mapping[str, SimilarityRow], written: set[str]) -> None:
    """Bring the ``holders`` of each of the ``written`` rows up to date with the content
    lists of the written rows (most recent last, ``CONTENT_HOLDERS_KEPT`` at most); rows
    not written are recorded as they were."""
    held_by: dict[str, list[str]] = defaultdict(list)
    for holder in sorted(written):
        for neighbour in rows[holder].content:
            held_by[neighbour.item_id].append(holder)
    for item_id in written:
        row = rows[item_id]
        earlier = [h for h in row.holders if h not in written]
        row.holders = [*earlier, *held_by.get(item_id, ())][-CONTENT_HOLDERS_KEPT:]


@dataclass(frozen=True)
class CountCorrection:
    """A stored count that the records disagree with: a token's count of holders (``token``)
    or, with ``token`` None, the document count. ``stored`` is None where none is stored."""

    token: str | None
    stored: float | None
    counted: int


def recount(tally: CatalogTally) -> list[CountCorrection]:
    """The corrections that make the stored counts those the records give (every catalog
    record, counted in ``tally``): each token's holders and the number of items. What two
    shards racing on one item, or a posting row counted before holders were, leaves wrong
    (see :class:`CatalogService`)."""
    holders, documents = tally.holders, tally.items
    stored_holders, stored_documents = tally.stored_holders, tally.stored_documents
    corrections = []
    for token in sorted(set(holders) | set(stored_holders)):
        stored, counted = stored_holders.get(token), holders[token]
        if stored != counted and not (stored is None and counted == 0):  # None, 0: nothing to store
            corrections.append(CountCorrection(token, stored, counted))
    if stored_documents != documents:
        corrections.append(CountCorrection(None, stored_documents, documents))
    return corrections


def _by_overlap(
    tokens: Sequence[str],
    postings: Mapping[str, Posting],
    documents: int,
    k: int,
    skip: set[str],
    tie_order: Callable[[str], int] | None = None,
    unavailable: AbstractSet[str] = frozenset(),
) -> list[str]:
    """The ``k`` items best by shared idf^2 (:func:`overlap_scores`) among those the postings
    of ``tokens`` name, ``skip`` and ``unavailable`` left out; ties by id, or by
    ``tie_order`` when given."""
    named = set().union(*(postings[t].items for t in tokens)) - skip if tokens else set()
    pool = {c for c in named if c not in unavailable}
    candidates = sorted(pool) if tie_order is None else sorted(pool, key=lambda c: (tie_order(c), c))
    if not candidates or k <= 0:
        return []
    # One pass over the postings (not candidates x tokens): a common token's posting may name
    # up to posting_limit items.
    row_of = {c: i for i, c in enumerate(candidates)}
    shared = np.zeros((len(candidates), len(tokens)))
    for column, token in enumerate(tokens):
        shared[[row_of[c] for c in postings[token].items if c in row_of], column] = 1.0
    df = np.array([postings[t].count for t in tokens], dtype=np.float64)
    return [candidates[i] for i in top_k(overlap_scores(shared, idf(df, documents)), k)]


def _row_state(row: SimilarityRow) -> tuple[object, ...]:
    """What the content side writes of a row, whatever the order of its holders and of its
    content entries of equal score (both are reordered by a write that changes nothing):
    its content list, holders, digest and category."""
    content = sorted((n.item_id, n.score, n.category or "") for n in row.content)
    return (tuple(content), frozenset(row.holders), row.content_digest, row.category)


def _tie_draw(item_id: str) -> Callable[[str], int]:
    """An order of candidates that differs per ``item_id`` and is the same at every retry."""
    return lambda candidate: zlib.crc32(f"{item_id}\x00{candidate}".encode())


@dataclass
class ContentIndex:
    """Content neighbours and stock, kept by the similarity function (see module docstring)."""

    settings: Settings
    catalog: CatalogRepository
    similarity: SimilarityRepository

    def neighbours(
        self,
        items: Mapping[str, CatalogItem],
        rescore: Mapping[str, Sequence[str]] | None = None,
        unavailable: AbstractSet[str] = frozenset(),
    ) -> tuple[dict[str, list[Neighbour]], dict[str, dict[str, float]], dict[str, int]]:
        """The content neighbours of each of ``items`` (their stored records), chosen among
        in-stock items (``unavailable``: the ids out of stock, left out of the candidates;
        a candidate whose record says it is out of stock is left out too), the cosine of
        each item with the items ``rescore`` names for it, whether or not they are among its
        neighbours (0 for an item without a record): what its old neighbours' rows should now
        say of it, and the :func:`record_digest` of each listed neighbour's record as read."""
        rescore = rescore or {}
        settings = self.settings
        tokens = {t for item in items.values() for t in item.terms}
        postings = self.catalog.postings(tokens)
        documents = max(self.catalog.documents(), 1)
        shortlist: dict[str, list[str]] = {}
        for item_id, item in items.items():
            held = [t for t in sorted(item.terms) if postings.get(t, NO_POSTING).items]
            usable = [t for t in held if len(postings[t].items) < settings.posting_limit]
            chosen = _by_overlap(
                usable, postings, documents, settings.content_candidates, {item_id}, unavailable=unavailable
            )
            full = [t for t in held if len(postings[t].items) >= settings.posting_limit]
            if len(chosen) < settings.content_per_item and full:
                # Too few look-alikes by its rarer tokens (a new model of a big brand in a big
                # category): the full postings' first posting_limit holders are candidates too.
                # Ties (all sharing the same full tokens, often) are drawn per item, not the
                # lowest ids each time: the items merged into those rows spread out.
                more = settings.content_candidates - len(chosen)
                draw = _tie_draw(item_id)
                chosen += _by_overlap(full, postings, documents, more, {item_id, *chosen}, draw, unavailable)
            shortlist[item_id] = chosen
        wanted = {c for chosen in shortlist.values() for c in chosen}
        wanted |= {c for item_id in items for c in rescore.get(item_id, ())}
        # The batch's own records as read (consistently) by the caller, the others as stored.
        fetched = {
            **self.catalog.get_many(wanted - items.keys()),
            **{c: items[c] for c in wanted & items.keys()},
        }
        records = self._with_current_norms(fetched, postings, documents)
        result: dict[str, list[Neighbour]] = {}
        rescored: dict[str, dict[str, float]] = {}
        for item_id, item in items.items():
            # Out-of-stock look-alikes are left out (requests filter them, so each would
            # take a slot for nothing: retired items filled a third of the lists of a shop's
            # new items within months); an item back in stock is merged in again (update).
            chosen = [c for c in shortlist[item_id] if c in records and records[c].in_stock]
            again = [c for c in dict.fromkeys(rescore.get(item_id, ())) if c != item_id]
            rescored[item_id] = dict.fromkeys(again, 0.0)
            extra = [c for c in again if c in records and c not in chosen]
            if not chosen and not extra:
                result[item_id] = []
                continue
            tokens_x = sorted(item.terms)
            df = np.array([max(postings.get(t, NO_POSTING).count, 1) for t in tokens_x], dtype=np.float64)
            weights = idf(df, documents)
            scored = chosen + extra
            counts = np.array(
                [[records[c].terms.get(t, 0) for t in tokens_x] for c in scored], dtype=np.float64
            )
            all_scores = content_cosine(
                np.array([item.terms[t] for t in tokens_x], dtype=np.float64),
                counts,
                weights,
                np.array([records[c].norm for c in scored]),
            )
            rescored[item_id].update(
                (c, round(float(all_scores[i]), 6)) for i, c in enumerate(scored) if c in rescored[item_id]
            )
            scores = all_scores[: len(chosen)]  # the list is chosen among the shortlist alone
            result[item_id] = [
                Neighbour(chosen[i], round(float(scores[i]), 6), records[chosen[i]].category or None)
                for i in top_k(scores, settings.content_per_item)
                if scores[i] >= settings.content_min_similarity
            ]
        seen = {n.item_id: record_digest(records[n.item_id]) for found in result.values() for n in found}
        return result, rescored, seen

    def _with_current_norms(
        self, records: dict[str, CatalogItem], postings: Mapping[str, Posting], documents: int
    ) -> dict[str, CatalogItem]:
        """``records`` with the norms computed at under 1 / ``NORM_REFRESH_GROWTH`` of the
        catalog's ``documents`` computed again (the postings of their tokens not in
        ``postings`` read at once) and written back."""
        stale = {
            item_id: record
            for item_id, record in records.items()
            if record.norm_documents * NORM_REFRESH_GROWTH <= documents
        }
        if not stale:
            return records
        unread = {t for record in stale.values() for t in record.terms} - postings.keys()
        known = {**postings, **self.catalog.postings(unread)} if unread else postings
        refreshed = {
            item_id: replace(
                record,
                norm=_norm(record, {t: known.get(t, NO_POSTING).count for t in record.terms}, documents),
                norm_documents=float(documents),
            )
            for item_id, record in stale.items()
        }
        self.catalog.refresh_norms(list(refreshed.values()))
        return {**records, **refreshed}

    def update(
        self, records: Mapping[str, CatalogItem], fresh: Mapping[str, SimilarityRow]
    ) -> list[SimilarityRow]:
        """Recompute the announced items' content lists, merge each item into its closest
        items' lists, correct or take it out of its former neighbours' lists (its title,
        tags or category changed: it may be no longer alike, or alike by another score and
        under another category), keep the out-of-stock set, and write the rows that changed.

        ``records``: the announced items' catalog records, as just read (consistently);
        ``fresh``: rows rebuilt earlier in this invocation (newer than what a read returns).
        """
        items = dict(records)
        if not items:
            return []
        stock = self.similarity.get_list(OUT_OF_STOCK_ROW)
        listed_out = {item_id for item_id, _ in stock.items}
        restocked = {item_id for item_id, item in items.items() if item.in_stock and item_id in listed_out}
        sold_out = {item_id: item for item_id, item in items.items() if not item.in_stock}
        unavailable = (listed_out - items.keys()) | sold_out.keys()
        # Items gone out of stock enter the set first: requests filter on it, even if the
        # content rows then keep failing (the record dead-lettered). Items back in stock
        # leave it last: a retry after a failed row write still sees the restock.
        stock = self._update_stock(sold_out, stock)
        rows = self._update_content(items, fresh, restocked, unavailable)
        self._update_stock(items, stock)
        return rows

    def _update_content(
        self,
        items: dict[str, CatalogItem],
        fresh: Mapping[str, SimilarityRow],
        restocked: set[str],
        unavailable: AbstractSet[str],
    ) -> list[SimilarityRow]:
        """:meth:`update` but for the out-of-stock set: ``restocked``, the announced items
        back in stock; ``unavailable``, the items out of stock as of the batch."""
        # The items' own rows first: their content lists and holders name the rows that
        # hold them now.
        own, _ = self.similarity.get_many(sorted(set(items) - fresh.keys()), consistent=True)
        own.update((k, v) for k, v in fresh.items() if k in items)
        digests = {item_id: record_digest(item) for item_id, item in items.items()}
        # An item whose row was computed from its tokens and category as they stand (a stock
        # or price change) keeps its content list and its entries in other rows: stock is
        # filtered at request time. Recomputing it rewrote some 20 rows per stock flip. But
        # an item back in stock is merged into its look-alikes' lists again: their lists
        # were chosen among in-stock items.
        unchanged = {
            item_id
            for item_id, row in own.items()
            if row.content_digest == digests[item_id] and item_id not in restocked
        }
        items = {item_id: item for item_id, item in items.items() if item_id not in unchanged}
        if not items:
            return []
        own = {item_id: row for item_id, row in own.items() if item_id not in unchanged}
        # The rows each remaining item's row lists or is held by: its tokens or category
        # changed, so it is scored again in them.
        before = {
            item_id: list(dict.fromkeys([*(n.item_id for n in row.content), *row.holders]))
            for item_id, row in own.items()
        }
        lists, rescored, seen = self.neighbours(items, before, unavailable)
        limit = self.settings.content_merge_limit
        merge_into = set(lists) | {n.item_id for found in lists.values() for n in found[:limit]}
        named = merge_into | {n.item_id for found in lists.values() for n in found}
        touched = named | {o for old in before.values() for o in old}
        read = sorted(touched - set(items) - own.keys() - fresh.keys())
        stored, _ = self.similarity.get_many(read, consistent=True)
        rows = {**own, **stored, **{k: v for k, v in fresh.items() if k in touched}}
        as_read = {item_id: _row_state(row) for item_id, row in rows.items()}
        held_before = {item_id: {n.item_id for n in row.content} for item_id, row in rows.items()}
        now = time.time()
        for item_id in named:
            rows.setdefault(item_id, SimilarityRow(item_id, [], updated_at=now))
        for item_id, found in lists.items():
            rows[item_id].content = found
            rows[item_id].category = items[item_id].category
            rows[item_id].content_digest = digests[item_id]
        changed = set(merge_into)
        for item_id, found in lists.items():
            for neighbour in found[:limit]:
                if neighbour.item_id in lists or not items[item_id].in_stock:
                    continue  # its own list was just computed in full; out of stock: no slot
                self._place(rows[neighbour.item_id], item_id, neighbour.score, items[item_id].category)
            for neighbour in found:
                listed = rows[neighbour.item_id]
                if item_id not in listed.holders:
                    changed.add(neighbour.item_id)  # to record the item among its holders
                if neighbour.item_id not in lists and listed.content_digest not in (
                    0,
                    seen[neighbour.item_id],
                ):
                    # Listed as a record its own announcement has not brought yet (or as
                    # one since replaced): that announcement then corrects the rows holding
                    # it, even if its record is by then back to what the digest says.
                    listed.content_digest = 0
                    changed.add(neighbour.item_id)
        for item_id, old in before.items():
            # (An out-of-stock item is not merged above: its places are corrected here.)
            merged = {n.item_id for n in lists[item_id][:limit]} if items[item_id].in_stock else set()
            for other in old:
                row = rows.get(other)
                if other in lists or other in merged or row is None:
                    continue  # computed in full, merged above, or no row to correct
                if any(n.item_id == item_id for n in row.content):
                    self._place(row, item_id, rescored[item_id].get(other, 0.0), items[item_id].category)
                    changed.add(other)
        self._forget_dropped(rows, changed, held_before)
        _record_holders(rows, changed)
        # Rows left as they were read are not written again (a restocked item whose places
        # all held: some 20 writes for nothing).
        changed = {
            item_id
            for item_id in changed
            if item_id in items or as_read.get(item_id) != _row_state(rows[item_id])
        }
        others = [rows[item_id] for item_id in sorted(changed - set(items))]
        own_rows = [rows[item_id] for item_id in sorted(changed & set(items))]
        # The announced items' rows last: until their digests are written, a retry (a
        # write failed half-way) corrects the rows that hold them again.
        self.similarity.put_rows(others)
        self.similarity.put_rows(own_rows)
        return [*others, *own_rows]

    def _forget_dropped(
        self, rows: dict[str, SimilarityRow], changed: set[str], held_before: Mapping[str, set[str]]
    ) -> None:
        """Add to ``changed`` the rows of the items a changed row's content list dropped
        (``held_before``: each row's list as read) whose holders name that row, reading
        those not in ``rows``: :func:`_record_holders` then takes the row out of their
        holders. Left in, such rows would fill an item's bounded record of holders and push
        out rows that do hold it."""
        dropped: dict[str, set[str]] = defaultdict(set)
        for holder in changed:
            for gone in held_before.get(holder, set()) - {n.item_id for n in rows[holder].content}:
                dropped[gone].add(holder)
        unread = sorted(set(dropped) - rows.keys())
        if unread:
            rows.update(self.similarity.get_many(unread, consistent=True)[0])
        changed.update(
            gone for gone, holders in dropped.items() if gone in rows and holders & set(rows[gone].holders)
        )

    def _place(self, row: SimilarityRow, item_id: str, score: float, category: str) -> None:
        """``item_id`` in ``row``'s content list with its current ``score`` and ``category``,
        in score order (out of the list below ``content_min_similarity``)."""
        kept = [n for n in row.content if n.item_id != item_id]
        if score >= self.settings.content_min_similarity:
            kept.append(Neighbour(item_id, score, category or None))
        kept.sort(key=lambda n: (-n.score, n.item_id))
        row.content = kept[: self.settings.content_per_item]

    def _update_stock(self, items: Mapping[str, CatalogItem], read: PopularList) -> PopularList:
        """Compare-and-swap the ``#out_of_stock`` row with the items' current stock
        (``read``: the row as last read or written; a lost race reads it again); the row as
        it now stands."""

        def updated(current: PopularList) -> PopularList | None:
            out = dict(current.items)
            # (Called twice a batch, mostly to change nothing: no sort of the set then.)
            if all(
                item_id not in out if item.in_stock else out.get(item_id) == item.timestamp
                for item_id, item in items.items()
            ):
                return None
            for item_id, item in items.items():
                if item.in_stock:
                    out.pop(item_id, None)
                else:
                    out[item_id] = item.timestamp
            return PopularList(sorted(out.items()), current.version, current.epoch)

        current, written = compare_and_swap(
            OUT_OF_STOCK_ROW,
            read,
            lambda: self.similarity.get_list(OUT_OF_STOCK_ROW),
            updated,
            lambda stock: self.similarity.put_list(OUT_OF_STOCK_ROW, stock),
        )
        # As put_list stores it: one version on.
        return current if written is None else replace(written, version=written.version + 1)
