"""Read rankdistill's distillation labels in Python, as batches of per-request training examples.

The labeler publishes one Avro record per request and kind on ``labels.pointwise``,
``labels.pairwise`` and ``labels.listwise`` (key ``user_id``; id ``<request_id>:<kind>``, stable
across replays and retries), in one of two framings (``kafka.outputFormat``):

* ``avro``: the message value is plain Avro binary of schemas/<Kind>Labels.avsc, no header
  (src/contracts/codec.ts ``encodeAvro``). The writer schema is that file: pass ``schemas_dir``.
* ``confluent``: byte 0, a 4-byte big-endian schema id, Avro binary; the writer schema is in the
  schema registry under subject ``<topic>-value``. Decoded with confluent-kafka's AvroDeserializer.

``rankdistill label --format avro`` and ``rankdistill replay --out DIR --format avro`` write Avro
container files (``labels.<kind>.avro``), which carry their schema: read with ``file_batches``.

Semantics (the same as the TypeScript client, docs/CLIENT.md):

* isolation read_committed: labels of aborted labeler transactions are never seen;
* a batch's offsets are committed when the loop asks for the NEXT batch (commit after the step).
  A crash, or a ``break``, re-delivers the batch in hand: at-least-once. Dedupe on ``Example.id``
  if a label must not count twice.

    from rankdistill_labels import kafka_batches
    for batch in kafka_batches("127.0.0.1:9092", "pointwise", group_id="my-trainer",
                               schemas_dir="rankdistill/schemas"):
        train_step(batch)

Run as a script it prints the examples as JSON lines (see ``--help``); the project's integration
test compares that output with what the TypeScript client reads.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import fastavro

KINDS = ("pointwise", "pairwise", "listwise")
CONTRACT = {"pointwise": "PointwiseLabels", "pairwise": "PairwiseLabels", "listwise": "ListwiseLabels"}
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass
class Example:
    """One request's labels of one kind, shaped for a training step.

    pointwise: ``items`` in label order, ``labels`` 0/1 (teacher's top K = 1), ``weights``.
    pairwise:  ``items[i]`` (higher-ranked) outranks ``neg_items[i]``, pair ``weights``.
    listwise:  ``items`` in label order, integer ``grades`` (gain = 2**grade - 1).
    ``record`` is the whole decoded label (ranks, teacher logits, soft targets, clicks, context).
    """

    id: str
    kind: str
    user_id: str
    ts: datetime
    items: list[str]
    labels: Optional[list[int]]
    weights: Optional[list[float]]
    grades: Optional[list[int]]
    neg_items: Optional[list[str]]
    record: dict[str, Any]
    topic: Optional[str] = None
    partition: Optional[int] = None
    offset: Optional[int] = None


class LabelDecodeError(Exception):
    """A label message or file record that cannot be decoded, with where it was found."""


def to_example(kind: str, r: dict[str, Any], where: tuple = (None, None, None)) -> Example:
    ts = r["ts"] if isinstance(r["ts"], datetime) else EPOCH + timedelta(milliseconds=r["ts"])
    base = dict(id=r["id"], kind=kind, user_id=r["user_id"], ts=ts, record=r,
                topic=where[0], partition=where[1], offset=where[2])
    if kind == "pointwise":
        it = r["items"]
        return Example(**base, items=[i["item_id"] for i in it], labels=[i["label"] for i in it],
                       weights=[i["weight"] for i in it], grades=None, neg_items=None)
    if kind == "pairwise":
        ps = r["pairs"]
        return Example(**base, items=[p["pos_item"] for p in ps], labels=None,
                       weights=[p["weight"] for p in ps], grades=None,
                       neg_items=[p["neg_item"] for p in ps])
    it = r["items"]
    return Example(**base, items=[i["item_id"] for i in it], labels=None, weights=None,
                   grades=[i["grade"] for i in it], neg_items=None)


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, found {kind!r}")


def _plain_decoder(kind: str, schemas_dir: Optional[str]) -> Callable[[bytes, str], dict]:
    """Plain Avro values carry no schema: the writer schema is schemas/<Kind>Labels.avsc."""
    d = schemas_dir or os.environ.get("RANKDISTILL_SCHEMAS")
    if d is None:  # this file in its checkout (examples/python): the repository's schemas/
        here = Path(globals().get("__file__", "")).resolve()
        d = str(here.parents[2] / "schemas") if len(here.parents) > 2 else "schemas"
    path = Path(d) / f"{CONTRACT[kind]}.avsc"
    if not path.is_file():
        raise FileNotFoundError(
            f"format 'avro' needs the writer schema {path.name}: pass schemas_dir= (the repository's"
            f" schemas/ folder) or set RANKDISTILL_SCHEMAS; not found at {path}")
    schema = fastavro.parse_schema(json.loads(path.read_text()))

    def decode(value: bytes, topic: str) -> dict:
        buf = io.BytesIO(value)
        record = fastavro.schemaless_reader(buf, schema, None)
        if buf.tell() != len(value):
            raise ValueError(f"{len(value) - buf.tell()} trailing bytes after the record"
                             " (wrong schema, or Confluent-framed: use format='confluent')")
        return record

    return decode


def _registry_decoder(url: str) -> Callable[[bytes, str], dict]:
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroDeserializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    deserialize = AvroDeserializer(SchemaRegistryClient({"url": url}))
    return lambda value, topic: deserialize(value, SerializationContext(topic, MessageField.VALUE))


def kafka_batches(
    brokers: str,
    kind: str,
    group_id: str,
    *,
    topic: Optional[str] = None,
    format: str = "avro",
    schema_registry_url: Optional[str] = None,
    schemas_dir: Optional[str] = None,
    batch_size: int = 256,
    from_beginning: bool = True,
    stop_at_end: bool = False,
    poll_timeout_s: float = 1.0,
    config: Optional[dict[str, Any]] = None,
) -> Iterator[list[Example]]:
    """Yields batches (lists of up to ``batch_size`` Examples) from a label topic, forever, or until
    every assigned partition is read to its end with ``stop_at_end``. Offsets of a batch are
    committed (synchronously) when the next batch is asked for; a ``break`` or an exception leaves
    the group without committing the batch in hand (it is re-delivered). ``format`` is the
    labeler's ``kafka.outputFormat``: 'avro' (needs ``schemas_dir``) or 'confluent' (needs
    ``schema_registry_url``). ``config`` adds librdkafka settings."""
    from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

    _check_kind(kind)
    topic = topic or f"labels.{kind}"
    if format == "avro":
        decode = _plain_decoder(kind, schemas_dir)
    elif format == "confluent":
        if not schema_registry_url:
            raise ValueError("format 'confluent' needs schema_registry_url")
        decode = _registry_decoder(schema_registry_url)
    else:
        raise ValueError(f"format must be 'avro' or 'confluent', found {format!r}")
    consumer = Consumer({
        "bootstrap.servers": brokers,
        "group.id": group_id,
        "isolation.level": "read_committed",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest" if from_beginning else "latest",
        "enable.partition.eof": stop_at_end,
        **(config or {}),
    })
    consumer.subscribe([topic])
    REBALANCED = (KafkaError.REBALANCE_IN_PROGRESS, KafkaError.ILLEGAL_GENERATION,
                  KafkaError.UNKNOWN_MEMBER_ID)
    at_end: set[int] = set()
    try:
        while True:
            batch: list[Example] = []
            offsets: dict[int, int] = {}
            for m in consumer.consume(batch_size, poll_timeout_s):
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        at_end.add(m.partition())
                        continue
                    raise KafkaException(err)
                at_end.discard(m.partition())
                try:
                    record = decode(m.value(), m.topic())
                except Exception as e:  # the batch is not committed: a restart meets it again
                    raise LabelDecodeError(f"undecodable {CONTRACT[kind]} at topic {m.topic()}"
                                           f" partition {m.partition()} offset {m.offset()}: {e}") from e
                batch.append(to_example(kind, record, (m.topic(), m.partition(), m.offset())))
                offsets[m.partition()] = m.offset() + 1
            if batch:
                yield batch  # the training step runs here
                try:
                    consumer.commit(offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()],
                                    asynchronous=False)
                except KafkaException as e:  # partitions moved meanwhile: their new owner re-reads
                    if e.args[0].code() not in REBALANCED:
                        raise
            elif stop_at_end:
                assigned = {tp.partition for tp in consumer.assignment()}
                if assigned and assigned <= at_end:
                    return
    finally:
        consumer.close()


def file_batches(path: str, kind: str, *, batch_size: int = 256) -> Iterator[list[Example]]:
    """Yields batches of Examples from a label file: an Avro container (``.avro``, read with its
    own schema) or NDJSON, or from the directory ``rankdistill label/replay --out`` wrote
    (``labels.<kind>.<ext>`` inside it)."""
    _check_kind(kind)
    p = Path(path)
    if p.is_dir():
        found = [p / f"labels.{kind}.{e}" for e in ("avro", "ndjson", "jsonl") if (p / f"labels.{kind}.{e}").exists()]
        if len(found) != 1:
            raise FileNotFoundError(f"expected exactly one labels.{kind}.(avro|ndjson|jsonl) in {p}, found {found}")
        p = found[0]
    with open(p, "rb") as f:
        avro = f.read(4) == b"Obj\x01"
        f.seek(0)
        records = fastavro.reader(f) if avro else (json.loads(line) for line in f if line.strip())
        batch: list[Example] = []
        for n, r in enumerate(records):
            batch.append(to_example(kind, r, (str(p), -1, n)))
            if len(batch) == batch_size:
                yield batch
                batch = []
        if batch:
            yield batch


def to_json(e: Example) -> str:
    """One example as a JSON line, ``ts`` as epoch milliseconds (as the TypeScript client gives it)."""
    r = dict(e.record, ts=(e.ts - EPOCH) // timedelta(milliseconds=1))
    return json.dumps({"id": e.id, "kind": e.kind, "topic": e.topic, "partition": e.partition,
                       "offset": e.offset, "record": r}, allow_nan=False)


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description="Print rankdistill labels as JSON lines, one example each.")
    ap.add_argument("kind", choices=KINDS)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--brokers", help="read the label topic from Kafka (host:port,...)")
    src.add_argument("--file", help="read a label file or a label/replay --out directory")
    ap.add_argument("--topic")
    ap.add_argument("--group", default="rankdistill-python-reader")
    ap.add_argument("--format", choices=("avro", "confluent"), default="avro")
    ap.add_argument("--schema-registry-url")
    ap.add_argument("--schemas-dir")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--follow", action="store_true", help="keep waiting for new labels (default: stop at the end)")
    a = ap.parse_args(argv)
    if a.brokers:
        batches = kafka_batches(a.brokers, a.kind, a.group, topic=a.topic, format=a.format,
                                schema_registry_url=a.schema_registry_url, schemas_dir=a.schemas_dir,
                                batch_size=a.batch_size, stop_at_end=not a.follow)
    else:
        batches = file_batches(a.file, a.kind, batch_size=a.batch_size)
    for batch in batches:
        sys.stdout.write("".join(to_json(e) + "\n" for e in batch))
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())


# PyTorch: torch is optional; without it this is a plain iterable and the rest of the file works.
try:
    from torch.utils.data import IterableDataset
except ImportError:
    IterableDataset = object  # type: ignore[misc,assignment]


class LabelBatches(IterableDataset):
    """``DataLoader(LabelBatches(lambda: kafka_batches(...)), batch_size=None)`` yields our batches.
    With ``num_workers=N`` each worker opens its own consumer in the same group: Kafka splits the
    partitions between them."""

    def __init__(self, make_batches: Callable[[], Iterator[list[Example]]]):
        self.make_batches = make_batches

    def __iter__(self) -> Iterator[list[Example]]:
        return iter(self.make_batches())
