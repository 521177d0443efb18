package kcl

import (
	"context"
	"errors"
	"maps"
	"reflect"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

func newTestLeaseTable(t *testing.T) (*LeaseTable, *dynamodb.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := testDynamo(t)
	table, err := NewLeaseTable(client, uniqueName("leases"))
	if err != nil {
		t.Fatal(err)
	}
	if err := table.CreateIfMissing(ctx); err != nil {
		t.Fatal(err)
	}
	// A second call finds the table and returns at once.
	if err := table.CreateIfMissing(ctx); err != nil {
		t.Fatalf("second CreateIfMissing: %v", err)
	}
	return table, client
}

// rawItem reads a lease item as DynamoDB stores it, to check the exact Java KCL attribute names and types.
func rawItem(t *testing.T, client *dynamodb.Client, table, key string) map[string]types.AttributeValue {
	t.Helper()
	out, err := client.GetItem(context.Background(), &dynamodb.GetItemInput{
		TableName: aws.String(table), Key: keyOf(key), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.Item
}

func TestLeaseTableKeySchema(t *testing.T) {
	table, client := newTestLeaseTable(t)
	out, err := client.DescribeTable(context.Background(), &dynamodb.DescribeTableInput{TableName: aws.String(table.Name())})
	if err != nil {
		t.Fatal(err)
	}
	ks := out.Table.KeySchema
	if len(ks) != 1 || aws.ToString(ks[0].AttributeName) != "leaseKey" || ks[0].KeyType != types.KeyTypeHash {
		t.Fatalf("key schema = %+v, want one HASH key leaseKey", ks)
	}
}

func TestLeaseTableRawItems(t *testing.T) {
	ctx := context.Background()
	table, client := newTestLeaseTable(t)

	created, err := table.createIfNotExists(ctx, Lease{
		Key: "shardId-000000000002", Checkpoint: CheckpointTrimHorizon,
		ParentShardIDs:  []string{"shardId-000000000000", "shardId-000000000001"},
		StartingHashKey: "0", EndingHashKey: "170141183460469231731687303715884105727",
	})

	if err != nil || !created {
		t.Fatalf("create = %v, %v; want true, nil", created, err)
	}
	if created, err := table.createIfNotExists(ctx, Lease{Key: "shardId-000000000002", Checkpoint: CheckpointLatest}); err != nil || created {
		t.Fatalf("second create = %v, %v; want false, nil", created, err)
	}

	type step struct {
		do   func(l *Lease) error
		want map[string]types.AttributeValue
	}
	s, n, ss, base := attrS, attrN, attrSS, rawItemOfChild // short names for the table below
	l, found, err := table.Get(ctx, "shardId-000000000002")
	if err != nil || !found {
		t.Fatalf("get = %v, %v", found, err)
	}
	steps := []struct {
		name string
		step
	}{
		{"created without owner", step{func(*Lease) error { return nil }, base(map[string]types.AttributeValue{"leaseCounter": n("0")})}},
		{"taken by worker-a", step{func(l *Lease) error { return table.take(ctx, l, "worker-a") },
			base(map[string]types.AttributeValue{"leaseCounter": n("1"), "leaseOwner": s("worker-a")})}},
		{"renewed", step{func(l *Lease) error { return table.renew(ctx, l) },
			base(map[string]types.AttributeValue{"leaseCounter": n("2"), "leaseOwner": s("worker-a")})}},
		{"stolen by worker-b", step{func(l *Lease) error { return table.take(ctx, l, "worker-b") },
			base(map[string]types.AttributeValue{"leaseCounter": n("3"), "leaseOwner": s("worker-b"), "ownerSwitchesSinceCheckpoint": n("1")})}},
		{"checkpointed inside an aggregate", step{func(l *Lease) error {
			return table.checkpoint(ctx, l, "49590338271490256608559692538361571095921575989136588898", 7, nil)
		}, base(map[string]types.AttributeValue{"leaseCounter": n("4"), "leaseOwner": s("worker-b"),
			"checkpoint": s("49590338271490256608559692538361571095921575989136588898"), "checkpointSubSequenceNumber": n("7")})}},
		{"checkpointed at shard end", step{func(l *Lease) error {
			return table.checkpoint(ctx, l, CheckpointShardEnd, 0, []string{"shardId-000000000005", "shardId-000000000006"})
		}, base(map[string]types.AttributeValue{"leaseCounter": n("5"), "leaseOwner": s("worker-b"),
			"checkpoint": s("SHARD_END"), "childShardIds": ss("shardId-000000000005", "shardId-000000000006")})}},
		{"released", step{func(l *Lease) error { return table.release(ctx, l) },
			base(map[string]types.AttributeValue{"leaseCounter": n("6"),
				"checkpoint": s("SHARD_END"), "childShardIds": ss("shardId-000000000005", "shardId-000000000006")})}},
	}
	for _, st := range steps {
		if err := st.do(&l); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		got := rawItem(t, client, table.Name(), l.Key)
		if !reflect.DeepEqual(got, st.want) {
			t.Fatalf("%s: raw item\n got %#v\nwant %#v", st.name, dump(got), dump(st.want))
		}
		parsed, err := leaseFromItem(got)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(parsed, l) {
			t.Fatalf("%s: lease after the write %+v differs from the item %+v", st.name, l, parsed)
		}
	}
}

func attrS(v string) types.AttributeValue     { return &types.AttributeValueMemberS{Value: v} }
func attrN(v string) types.AttributeValue     { return &types.AttributeValueMemberN{Value: v} }
func attrSS(v ...string) types.AttributeValue { return &types.AttributeValueMemberSS{Value: v} }

// rawItemOfChild is the item TestLeaseTableRawItems creates, shardId-000000000002 with two parents, with the
// attributes of extra set on it.
func rawItemOfChild(extra map[string]types.AttributeValue) map[string]types.AttributeValue {
	m := map[string]types.AttributeValue{
		"leaseKey":                     attrS("shardId-000000000002"),
		"parentShardId":                attrSS("shardId-000000000000", "shardId-000000000001"),
		"startingHashKey":              attrS("0"),
		"endingHashKey":                attrS("170141183460469231731687303715884105727"),
		"checkpoint":                   attrS("TRIM_HORIZON"),
		"checkpointSubSequenceNumber":  attrN("0"),
		"ownerSwitchesSinceCheckpoint": attrN("0"),
	}
	maps.Copy(m, extra)
	return m
}

func dump(item map[string]types.AttributeValue) map[string]any {
	out := map[string]any{}
	for k, v := range item {
		switch v := v.(type) {
		case *types.AttributeValueMemberS:
			out[k] = "S:" + v.Value
		case *types.AttributeValueMemberN:
			out[k] = "N:" + v.Value
		case *types.AttributeValueMemberSS:
			out[k] = v.Value
		default:
			out[k] = v
		}
	}
	return out
}

func TestLeaseTableConditionalWrites(t *testing.T) {
	ctx := context.Background()
	table, _ := newTestLeaseTable(t)
	tests := map[string]struct {
		// act runs with the holder's copy (owner worker-a) after a second worker did `other` on its own copy.
		other func(l *Lease) error
		act   func(l *Lease) error
	}{
		"renew after a steal":      {other: func(l *Lease) error { return table.take(ctx, l, "worker-b") }, act: func(l *Lease) error { return table.renew(ctx, l) }},
		"checkpoint after a steal": {other: func(l *Lease) error { return table.take(ctx, l, "worker-b") }, act: func(l *Lease) error { return table.checkpoint(ctx, l, "1", 0, nil) }},
		"release after a steal":    {other: func(l *Lease) error { return table.take(ctx, l, "worker-b") }, act: func(l *Lease) error { return table.release(ctx, l) }},
		"take with a stale counter": {other: func(l *Lease) error { return table.renew(ctx, l) },
			act: func(l *Lease) error { return table.take(ctx, l, "worker-c") }},
		"renew after a release by another copy": {other: func(l *Lease) error { return table.release(ctx, l) }, act: func(l *Lease) error { return table.renew(ctx, l) }},
	}
	i := 0
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			i++
			key := "shardId-" + formatInt(int64(i))
			if _, err := table.createIfNotExists(ctx, Lease{Key: key, Checkpoint: CheckpointTrimHorizon}); err != nil {
				t.Fatal(err)
			}
			holder, _, err := table.Get(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			if err := table.take(ctx, &holder, "worker-a"); err != nil {
				t.Fatal(err)
			}
			other := holder
			if err := tc.other(&other); err != nil {
				t.Fatal(err)
			}
			err = tc.act(&holder)
			if !errors.Is(err, ErrLeaseLost) {
				t.Fatalf("got %v, want ErrLeaseLost", err)
			}
		})
	}
}

func TestLeaseFromJavaKCLItem(t *testing.T) {
	// An item as the Java KCL 2.x writes it, with attributes this package does not use.
	item := map[string]types.AttributeValue{
		"leaseKey":                           &types.AttributeValueMemberS{Value: "shardId-000000000001"},
		"leaseOwner":                         &types.AttributeValueMemberS{Value: "java-worker"},
		"leaseCounter":                       &types.AttributeValueMemberN{Value: "42"},
		"checkpoint":                         &types.AttributeValueMemberS{Value: "4959"},
		"checkpointSubSequenceNumber":        &types.AttributeValueMemberN{Value: "3"},
		"ownerSwitchesSinceCheckpoint":       &types.AttributeValueMemberN{Value: "2"},
		"pendingCheckpoint":                  &types.AttributeValueMemberS{Value: "4960"},
		"pendingCheckpointSubSequenceNumber": &types.AttributeValueMemberN{Value: "0"},
		"throughputKBps":                     &types.AttributeValueMemberN{Value: "1.5"},
	}
	got, err := leaseFromItem(item)
	if err != nil {
		t.Fatal(err)
	}
	want := Lease{Key: "shardId-000000000001", Owner: "java-worker", Counter: 42, Checkpoint: "4959",
		CheckpointSubSequenceNumber: 3, OwnerSwitchesSinceCheckpoint: 2}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	bad := map[string]map[string]types.AttributeValue{
		"no key":           {"leaseCounter": &types.AttributeValueMemberN{Value: "1"}},
		"counter a string": {"leaseKey": &types.AttributeValueMemberS{Value: "s"}, "leaseCounter": &types.AttributeValueMemberS{Value: "1"}},
		"counter not int":  {"leaseKey": &types.AttributeValueMemberS{Value: "s"}, "leaseCounter": &types.AttributeValueMemberN{Value: "1.5"}},
		"parents a string": {"leaseKey": &types.AttributeValueMemberS{Value: "s"}, "parentShardId": &types.AttributeValueMemberS{Value: "p"}},
	}
	for name, item := range bad {
		t.Run(name, func(t *testing.T) {
			if _, err := leaseFromItem(item); err == nil {
				t.Fatal("no error")
			}
		})
	}
}

func TestCheckpointRemovesJavaPendingCheckpoint(t *testing.T) {
	ctx := context.Background()
	table, client := newTestLeaseTable(t)
	if _, err := table.createIfNotExists(ctx, Lease{Key: "shardId-000000000000", Checkpoint: CheckpointTrimHorizon}); err != nil {
		t.Fatal(err)
	}
	l, _, err := table.Get(ctx, "shardId-000000000000")
	if err != nil {
		t.Fatal(err)
	}
	if err := table.take(ctx, &l, "worker-a"); err != nil {
		t.Fatal(err)
	}
	// A Java KCL worker's prepareCheckpoint left a pending checkpoint on the item.
	pending := map[string]types.AttributeValue{
		AttrPendingCheckpoint:                  &types.AttributeValueMemberS{Value: "49590338271490256608559692538361571095921575989136588898"},
		AttrPendingCheckpointSubSequenceNumber: &types.AttributeValueMemberN{Value: "3"},
		AttrPendingCheckpointState:             &types.AttributeValueMemberB{Value: []byte("state")},
	}
	for name, v := range pending {
		if _, err := client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName: aws.String(table.Name()), Key: keyOf(l.Key),
			UpdateExpression:          aws.String("SET #a = :v"),
			ExpressionAttributeNames:  map[string]string{"#a": name},
			ExpressionAttributeValues: map[string]types.AttributeValue{":v": v},
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := table.checkpoint(ctx, &l, "49590338271490256608559692538361571095921575989136588898", 1, nil); err != nil {
		t.Fatal(err)
	}
	item := rawItem(t, client, table.Name(), l.Key)
	for name := range pending {
		if v, ok := item[name]; ok {
			t.Errorf("after a checkpoint the item still holds %s = %#v", name, v)
		}
	}
	if got := item[AttrCheckpointSubSequenceNumber]; !reflect.DeepEqual(got, &types.AttributeValueMemberN{Value: "1"}) {
		t.Errorf("checkpointSubSequenceNumber = %#v, want 1", got)
	}
}
