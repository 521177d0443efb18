#!/usr/bin/env python3
"""A MultiLang record processor in Python, with the standard library only.

It speaks the protocol of the Java KCL's MultiLangDaemon (JSON lines on stdin and stdout), so the Go consumer runs
it unchanged (PROCESSOR=multilang, MULTILANG_COMMAND="python3 record_processor.py"), one process per shard. It writes
each record to stderr as one JSON line, which the consumer logs tagged with the shard, and checkpoints after every
batch, at the shard's end and when the consumer shuts down. Replace handle() with your own processing.

amazon_kclpy (pip install amazon_kclpy) wraps the same protocol in classes; its processors run unchanged too.
"""
import base64
import json
import sys


def send(message):
    # Every line is wrapped in newlines, as amazon_kclpy does, so that a stray print cannot glue onto it.
    sys.stdout.write("\n" + json.dumps(message) + "\n")
    sys.stdout.flush()


def receive():
    line = sys.stdin.readline()
    if not line:
        sys.exit(0)  # the consumer closed our input: the shard is done here
    return json.loads(line)


def checkpoint(sequence_number=None, sub_sequence_number=None):
    """Records every record up to the position (all delivered so far without one) as processed."""
    send({"action": "checkpoint", "sequenceNumber": sequence_number, "subSequenceNumber": sub_sequence_number})
    answer = receive()
    if answer.get("error"):
        # ShutdownException: the lease is another worker's now. ThrottlingException: retry later.
        sys.stderr.write("checkpoint refused: %s\n" % answer["error"])


def handle(shard_id, record):
    data = base64.b64decode(record["data"]).decode("utf-8", "replace")
    sys.stderr.write(json.dumps({"shard_id": shard_id, "partition_key": record["partitionKey"],
                                 "sequence_number": record["sequenceNumber"],
                                 "sub_sequence_number": record["subSequenceNumber"], "data": data}) + "\n")


def main():
    shard_id = None
    while True:
        message = receive()
        action = message["action"]
        if action == "initialize":
            shard_id = message["shardId"]
        elif action == "processRecords":
            for record in message["records"]:
                handle(shard_id, record)
            if message["records"]:
                checkpoint()
        elif action in ("shardEnded", "shutdownRequested"):
            checkpoint()  # at the shard's end this records SHARD_END, so its children are read
        # leaseLost: another worker has the shard; nothing to checkpoint.
        send({"action": "status", "responseFor": action})


if __name__ == "__main__":
    main()
