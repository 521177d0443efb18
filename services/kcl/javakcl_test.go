package kcl

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// putPlainRecords writes n records (not aggregated) to each open shard and returns them per shard, in order, with
// their sequence numbers. The data of record i of shard s is "s<s>|<i>|".
func putPlainRecords(t *testing.T, kc *kinesis.Client, stream string, n int) (recs [][]testRecord, seqs [][]string) {
	t.Helper()
	shards := openShards(t, kc, stream)
	recs, seqs = make([][]testRecord, len(shards)), make([][]string, len(shards))
	for i := range n {
		var entries []ktypes.PutRecordsRequestEntry
		for s, sh := range shards {
			key := "s" + strconv.Itoa(s)
			r := testRecord{key: key, n: i, data: fmt.Appendf(nil, "%s|%d|", key, i)}
			recs[s] = append(recs[s], r)
			entries = append(entries, ktypes.PutRecordsRequestEntry{PartitionKey: aws.String(key),
				ExplicitHashKey: sh.HashKeyRange.StartingHashKey, Data: r.data})
		}
		out, err := kc.PutRecords(context.Background(), &kinesis.PutRecordsInput{StreamName: &stream, Records: entries})
		if err != nil {
			t.Fatal(err)
		}
		for s, r := range out.Records {
			if r.ErrorCode != nil {
				t.Fatalf("PutRecords: %s", aws.ToString(r.ErrorMessage))
			}
			seqs[s] = append(seqs[s], aws.ToString(r.SequenceNumber))
		}
	}
	return recs, seqs
}

// javaLease is the lease of a shard exactly as the Java KCL 3.x writes it (DynamoDBLeaseSerializer.toDynamoRecord),
// with extra attributes.
func javaLease(shard ktypes.Shard, owner string, counter int, checkpoint string, extra map[string]types.AttributeValue) map[string]types.AttributeValue {
	item := map[string]types.AttributeValue{
		"leaseKey":                     attrS(aws.ToString(shard.ShardId)),
		"leaseCounter":                 attrN(strconv.Itoa(counter)),
		"leaseOwner":                   attrS(owner),
		"ownerSwitchesSinceCheckpoint": attrN("0"),
		"checkpoint":                   attrS(checkpoint),
		"checkpointSubSequenceNumber":  attrN("0"),
		"startingHashKey":              attrS(aws.ToString(shard.HashKeyRange.StartingHashKey)),
		"endingHashKey":                attrS(aws.ToString(shard.HashKeyRange.EndingHashKey)),
		"entityType":                   attrS("LEASE"),
	}
	for k, v := range extra {
		item[k] = v
	}
	return item
}

// javaEntities are the other items the Java KCL 3.x keeps in a lease table (worker metrics, the migration state),
// and one of an entity type this package does not know, which names worker-a as its leaseOwner.
func javaEntities() []map[string]types.AttributeValue {
	m := func(kv ...any) types.AttributeValue {
		out := map[string]types.AttributeValue{}
		for i := 0; i < len(kv); i += 2 {
			out[kv[i].(string)] = kv[i+1].(types.AttributeValue)
		}
		return &types.AttributeValueMemberM{Value: out}
	}
	l := func(vs ...types.AttributeValue) types.AttributeValue { return &types.AttributeValueMemberL{Value: vs} }
	return []map[string]types.AttributeValue{{
		"leaseKey": attrS("java-worker-1"), "entityType": attrS("WORKER_METRIC_STATS"), "lut": attrN("1767225600"),
		"sts": m("C", l(attrN("40.5"), attrN("38.25"))), "opr": m("C", l(attrN("100"))),
		"properties": m("host", attrS("ip-10-0-0-1")), "sup": attrN("1"), "slu": attrN("1767225600"),
	}, {
		"leaseKey": attrS("Migration3.0"), "entityType": attrS("CLIENT_VERSION_MIGRATION"),
		"cv": attrS("CLIENT_VERSION_UPGRADE_FROM_2X"), "mb": attrS("java-worker-1"), "mts": attrN("1767225600000"),
		"h": l(m("cv", attrS("CLIENT_VERSION_INIT"), "mb", attrS("java-worker-1"), "mts", attrN("1767225500000"))),
	}, {
		"leaseKey": attrS("future-entity-1"), "entityType": attrS("FUTURE_ENTITY"), "leaseOwner": attrS("worker-a"),
		"leaseCounter": attrN("3"), "payload": attrS("not a shard"),
	}}
}

// javaOldOwner plays the Java KCL 3.x worker that is handing a lease over: it renews the lease as its renewer does
// (counter + 1 on the condition of the counter), then checkpoints and transfers it to the new owner as its
// LeaseGracefulShutdownHandler does (assignLease: leaseOwner, checkpointOwner removed, counter + 1).
type javaOldOwner struct {
	client      *dynamodb.Client
	table, key  string
	owner, next string
	counter     int
	transferred atomic.Bool
}

// run renews every 300 ms for hold, then checkpoints at checkpoint and transfers the lease; it returns the first
// failed write (another worker took the lease it was still reading).
func (j *javaOldOwner) run(ctx context.Context, hold time.Duration, checkpoint string) error {
	update := func(expr, cond string, values map[string]types.AttributeValue) error {
		_, err := j.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName: aws.String(j.table), Key: keyOf(j.key), UpdateExpression: aws.String(expr),
			ConditionExpression: aws.String(cond), ExpressionAttributeValues: values,
		})
		if err == nil {
			j.counter++
		}
		return err
	}
	counter := func(extra map[string]types.AttributeValue) map[string]types.AttributeValue {
		extra[":prev"], extra[":next"] = attrN(strconv.Itoa(j.counter)), attrN(strconv.Itoa(j.counter+1))
		return extra
	}
	renew := time.NewTicker(300 * time.Millisecond)
	defer renew.Stop()
	for holding := time.After(hold); holding != nil; {
		select {
		case <-holding:
			holding = nil
		case <-renew.C:
			if err := update("SET leaseCounter = :next", "leaseCounter = :prev", counter(map[string]types.AttributeValue{})); err != nil {
				return fmt.Errorf("java owner's renewal %d: %w", j.counter, err)
			}
		}
	}
	if err := update("SET leaseCounter = :next, checkpoint = :cp, checkpointSubSequenceNumber = :zero, ownerSwitchesSinceCheckpoint = :zero "+
		"REMOVE pendingCheckpoint, pendingCheckpointSubSequenceNumber, pendingCheckpointState", "leaseCounter = :prev",
		counter(map[string]types.AttributeValue{":cp": attrS(checkpoint), ":zero": attrN("0")})); err != nil {
		return fmt.Errorf("java owner's checkpoint: %w", err)
	}
	j.transferred.Store(true)
	if err := update("SET leaseOwner = :new REMOVE checkpointOwner ADD leaseCounter :one",
		"leaseOwner = :new AND checkpointOwner = :old AND attribute_exists(leaseKey)",
		map[string]types.AttributeValue{":new": attrS(j.next), ":old": attrS(j.owner), ":one": attrN("1")}); err != nil {
		j.transferred.Store(false)
		return fmt.Errorf("java owner's transfer: %w", err)
	}
	return nil
}

func TestJavaKCL3LeaseTableIsUnderstoodAndKept(t *testing.T) {
	ctx := context.Background()
	// GIVEN a stream of two shards holding 100 records each
	kc := testKinesis(t)
	stream := createStream(t, kc, 2)
	recs, seqs := putPlainRecords(t, kc, stream, 100)
	shards := openShards(t, kc, stream)
	// GIVEN its lease table as a Java KCL 3.x application left it (table and index created as the Java KCL 3.x does):
	// shard 0 checkpointed at its record 39 by a worker that died, shard 1 checkpointed at its record 29 and being
	// handed over from a live Java worker to worker-a, and the Java KCL's other entities
	client := testDynamo(t)
	table := mustTable(t, uniqueName("java3"))
	if err := table.CreateIfMissing(ctx); err != nil {
		t.Fatal(err)
	}
	key0, key1 := aws.ToString(shards[0].ShardId), aws.ToString(shards[1].ShardId)
	seeded := append([]map[string]types.AttributeValue{
		javaLease(shards[0], "java-worker-1", 7, seqs[0][39],
			map[string]types.AttributeValue{"throughputKBps": attrN("2.5"), "x-team-note": attrS("keep me")}),
		javaLease(shards[1], "worker-a", 11, seqs[1][29], map[string]types.AttributeValue{
			"throughputKBps": attrN("4"), "checkpointOwner": attrS("java-worker-2"), "x-custom": attrN("42")}),
	}, javaEntities()...)
	for _, item := range seeded {
		if _, err := client.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table.Name()), Item: item}); err != nil {
			t.Fatal(err)
		}
	}
	old := &javaOldOwner{client: client, table: table.Name(), key: key1, owner: "java-worker-2", next: "worker-a", counter: 11}
	javaDone := make(chan error, 1)
	go func() { javaDone <- old.run(ctx, 4*time.Second, seqs[1][59]) }()

	// WHEN worker-a runs on it
	c := newCollector()
	var readBeforeTransfer atomic.Int64
	cfg := fastConfig(stream, table.Name(), "worker-a")
	cfg.CreateLeaseTable, cfg.FailoverTime, cfg.RenewInterval = false, 3*time.Second, time.Second
	tw := startWorker(t, cfg, kc, c, func(batch []Record) error {
		if batch[0].ShardID == key1 && !old.transferred.Load() {
			readBeforeTransfer.Add(int64(len(batch)))
		}
		return nil
	})
	want := append(slices.Clone(recs[0][40:]), recs[1][60:]...)
	c.waitFor(t, len(want), 60*time.Second)
	if err := <-javaDone; err != nil {
		t.Fatalf("the Java worker lost the lease it was handing over: %v", err)
	}
	tw.stop(t)

	// THEN it resumed each shard right after its checkpoint (the dead worker's, and the one the Java worker wrote
	// when it let go) and read nothing of the shard being handed over before the Java worker let go
	c.checkComplete(t, want)
	c.mu.Lock()
	for _, r := range append(slices.Clone(recs[0][:40]), recs[1][:60]...) {
		if c.deliveries[string(r.data)] > 0 {
			t.Errorf("record %s delivered: it lies before its shard's checkpoint", r.data)
		}
	}
	c.mu.Unlock()
	if n := readBeforeTransfer.Load(); n > 0 {
		t.Errorf("%d records of %s read while its Java owner still held it", n, key1)
	}
	// THEN every item it does not own is unchanged, and so is every attribute of the leases it does not own
	checkItemsKept(t, client, table.Name(), seeded)
	_, dups := c.distinct()
	t.Logf("Java KCL 3.x table: resumed %s after its checkpoint and %s after its Java owner let go; %d records, %d duplicates; %d non-lease items and every unknown attribute unchanged",
		key0, key1, len(want), dups, len(javaEntities()))
}

// checkItemsKept fails unless the table holds exactly the seeded items, each non-lease item unchanged and each lease
// with every attribute unchanged but those a worker writes.
func checkItemsKept(t *testing.T, client *dynamodb.Client, table string, seeded []map[string]types.AttributeValue) {
	t.Helper()
	owned := []string{AttrLeaseOwner, AttrLeaseCounter, AttrCheckpoint, AttrCheckpointSubSequenceNumber,
		AttrOwnerSwitchesSinceCheckpoint, AttrThroughputKBps, AttrCheckpointOwner}
	out, err := client.Scan(context.Background(), &dynamodb.ScanInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Items) != len(seeded) {
		t.Fatalf("%d items after the run, want the %d seeded", len(out.Items), len(seeded))
	}
	for _, want := range seeded {
		got := rawItem(t, client, table, want[AttrLeaseKey].(*types.AttributeValueMemberS).Value)
		isLease := reflect.DeepEqual(want[AttrEntityType], attrS(EntityTypeLease))
		for name, v := range want {
			if !(isLease && slices.Contains(owned, name)) && !reflect.DeepEqual(got[name], v) {
				t.Errorf("item %s: %s = %#v after the run, want %#v unchanged", dump(want)[AttrLeaseKey], name, got[name], v)
			}
		}
		if !isLease && len(got) != len(want) {
			t.Errorf("item %s: %v after the run, want %v", dump(want)[AttrLeaseKey], dump(got), dump(want))
		}
	}
}
