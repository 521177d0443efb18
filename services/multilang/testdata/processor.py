#!/usr/bin/env python3
"""A MultiLang record processor for the host's tests, written with the standard library only.

It speaks the protocol as amazon_kclpy does (each message a JSON line, every line it writes wrapped in newlines) and
records what happens in two JSON-lines files named by the environment:

  RECORDS_FILE  one line per record processed: shard, sequence and sub-sequence numbers, partition key, data, pid
  EVENTS_FILE   one line per lifecycle event: initialize (with its position), checkpoint (with the answer's error),
                leaseLost, shardEnded, shutdownRequested, shutdown (protocol version 1, with its reason)

CHECKPOINT says when it checkpoints: "batch" (default: at the last record of every batch, as (sequence number,
sub-sequence number)), "null" (every batch, with no position), or "never". At shardEnded and shutdownRequested it
always checkpoints with no position.

FAULT makes it misbehave once per test (FAULT_ONCE names a file that the first faulty child creates; later children
see it and behave):
  exit1             exit with status 1 after processing the first record of the second batch
  hang              stop answering (sleep) after the first record of the second batch
  stray             print stray text on stdout before every answer (not a fault: the host must skip the lines)
  wrong-status      answer the second processRecords with a status for initialize
  unknown-action    send an action the protocol does not have
  refused-checkpoint  checkpoint at a position before the last checkpoint, then one past the last record delivered
  no-shard-end-checkpoint  answer shardEnded without checkpointing
"""
import base64
import json
import os
import sys
import time

RECORDS_FILE = os.environ.get("RECORDS_FILE")
EVENTS_FILE = os.environ.get("EVENTS_FILE")
CHECKPOINT = os.environ.get("CHECKPOINT", "batch")
FAULT = os.environ.get("FAULT", "")
SLOW_MS = int(os.environ.get("SLOW_MS", "0"))  # a pause per record, so that a test can act in the middle of a batch
FAULT_ONCE = os.environ.get("FAULT_ONCE", "")


def fault_now(name):
    """True the first time FAULT == name happens in this test (claims the FAULT_ONCE file)."""
    if FAULT != name:
        return False
    if not FAULT_ONCE:
        return True
    try:
        os.close(os.open(FAULT_ONCE, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        return True
    except FileExistsError:
        return False


def append(path, obj):
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(obj) + "\n")


def write(obj):
    sys.stdout.write("\n" + json.dumps(obj) + "\n")
    sys.stdout.flush()


def read():
    line = sys.stdin.readline()
    if not line:
        sys.exit(0)  # the host closed our input: done
    return json.loads(line)


class Processor:
    def __init__(self):
        self.shard = None
        self.batches = 0
        self.last = None  # (sequence number, sub-sequence number) of the last record processed
        self.stray = FAULT == "stray"

    def checkpoint(self, seq=None, sub=None):
        write({"action": "checkpoint", "sequenceNumber": seq, "subSequenceNumber": sub})
        answer = read()
        if answer.get("action") != "checkpoint":
            sys.stderr.write("expected a checkpoint answer, got %r\n" % answer)
            sys.exit(3)
        append(EVENTS_FILE, {"event": "checkpoint", "shard": self.shard, "pid": os.getpid(),
                             "sequenceNumber": seq, "subSequenceNumber": sub, "error": answer.get("error")})
        return answer.get("error")

    def initialize(self, msg):
        self.shard = msg["shardId"]
        append(EVENTS_FILE, {"event": "initialize", "shard": self.shard, "pid": os.getpid(),
                             "sequenceNumber": msg["sequenceNumber"], "subSequenceNumber": msg["subSequenceNumber"]})
        sys.stderr.write("processor %d initialized for %s\n" % (os.getpid(), self.shard))

    def process_records(self, msg):
        self.batches += 1
        for i, r in enumerate(msg["records"]):
            if self.batches == 2 and i == 1 and fault_now("exit1"):
                sys.stderr.write("exiting with status 1 in the middle of a batch\n")
                sys.exit(1)
            if self.batches == 2 and i == 1 and fault_now("hang"):
                sys.stderr.write("hanging in the middle of a batch\n")
                time.sleep(3600)
            if SLOW_MS:
                time.sleep(SLOW_MS / 1000.0)
            append(RECORDS_FILE, {"shard": self.shard, "seq": r["sequenceNumber"], "sub": r["subSequenceNumber"],
                                  "key": r["partitionKey"], "data": base64.b64decode(r["data"]).decode("utf-8", "replace"),
                                  "arrival": r["approximateArrivalTimestamp"], "pid": os.getpid()})
            self.last = (r["sequenceNumber"], r["subSequenceNumber"])
        if self.batches == 2 and fault_now("unknown-action"):
            write({"action": "commit", "sequenceNumber": self.last[0]})
            read()
        if self.batches == 2 and self.last is not None and fault_now("refused-checkpoint"):
            # before the last checkpoint (that of the first batch), then past the last record delivered
            self.checkpoint("0", 0)
            self.checkpoint(self.last[0], self.last[1] + 1000000)
        if msg["records"] and CHECKPOINT == "batch":
            self.checkpoint(self.last[0], self.last[1])
        elif CHECKPOINT == "null":
            self.checkpoint()
        if self.batches == 2 and fault_now("wrong-status"):
            return "initialize"
        return "processRecords"

    def lease_lost(self, msg):
        append(EVENTS_FILE, {"event": "leaseLost", "shard": self.shard, "pid": os.getpid()})

    def shard_ended(self, msg):
        append(EVENTS_FILE, {"event": "shardEnded", "shard": self.shard, "pid": os.getpid()})
        if fault_now("no-shard-end-checkpoint"):
            return
        self.checkpoint()

    def shutdown_requested(self, msg):
        append(EVENTS_FILE, {"event": "shutdownRequested", "shard": self.shard, "pid": os.getpid()})
        self.checkpoint()

    def shutdown(self, msg):
        append(EVENTS_FILE, {"event": "shutdown", "reason": msg["reason"], "shard": self.shard, "pid": os.getpid()})
        if msg["reason"] == "TERMINATE":
            self.checkpoint()

    def run(self):
        handlers = {
            "initialize": self.initialize,
            "processRecords": self.process_records,
            "leaseLost": self.lease_lost,
            "shardEnded": self.shard_ended,
            "shutdownRequested": self.shutdown_requested,
            "shutdown": self.shutdown,
        }
        while True:
            msg = read()
            action = msg["action"]
            response_for = handlers[action](msg) or action
            if self.stray:
                sys.stdout.write("stray text from the processor before its %s status\n" % action)
                sys.stdout.flush()
            write({"action": "status", "responseFor": response_for})


if __name__ == "__main__":
    Processor().run()
