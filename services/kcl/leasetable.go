package kcl

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
)

// DynamoDBAPI is the part of the DynamoDB client the lease table uses (*dynamodb.Client implements it).
type DynamoDBAPI interface {
	DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
	CreateTable(ctx context.Context, in *dynamodb.CreateTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error)
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	Scan(ctx context.Context, in *dynamodb.ScanInput, optFns ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error)
	DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, optFns ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
}

// ErrLeaseLost means a conditional write on a lease failed: another worker took it (or it was released), so this
// worker must stop processing the shard at once, without checkpointing.
var ErrLeaseLost = errors.New("lease lost")

// errNoOwnerIndex means the lease table has no usable LeaseOwnerIndexName: leases are found by scanning the table.
var errNoOwnerIndex = errors.New("no lease owner index")

// errNotALease means an item of the lease table is another entity of the Java KCL 3.x (AttrEntityType).
var errNotALease = errors.New("not a lease")

// LeaseTable is a Java KCL lease table. Outside the worker it is for reading the leases (List, Get) and for creating
// the table in local runs (CreateIfMissing); the worker writes them, with conditional writes only (no transactions,
// no TTL), so it works on DynamoDB and on dynalite alike.
type LeaseTable struct {
	client DynamoDBAPI
	name   string
}

// NewLeaseTable returns a LeaseTable over the named table.
func NewLeaseTable(client DynamoDBAPI, tableName string) (*LeaseTable, error) {
	if client == nil {
		return nil, errors.New("lease table: nil DynamoDB client")
	}
	if tableName == "" {
		return nil, errors.New("lease table: empty table name")
	}
	return &LeaseTable{client: client, name: tableName}, nil
}

// Name returns the table name.
func (t *LeaseTable) Name() string { return t.name }

// CreateIfMissing creates the table when it does not exist, as the Java KCL 3.x does (on-demand billing, hash key
// leaseKey, and the LeaseOwnerIndexName index: hash key leaseOwner, range key leaseKey, keys only), and waits until
// it is active.
func (t *LeaseTable) CreateIfMissing(ctx context.Context) error {
	_, err := t.client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: &t.name})
	if err == nil {
		return t.waitActive(ctx)
	}
	var notFound *types.ResourceNotFoundException
	if !errors.As(err, &notFound) {
		return fmt.Errorf("describe lease table %s: %w", t.name, err)
	}
	_, err = t.client.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:   &t.name,
		BillingMode: types.BillingModePayPerRequest,
		KeySchema:   []types.KeySchemaElement{{AttributeName: aws.String(LeaseTableHashKey), KeyType: types.KeyTypeHash}},
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String(LeaseTableHashKey), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String(AttrLeaseOwner), AttributeType: types.ScalarAttributeTypeS},
		},
		GlobalSecondaryIndexes: []types.GlobalSecondaryIndex{{
			IndexName: aws.String(LeaseOwnerIndexName),
			KeySchema: []types.KeySchemaElement{
				{AttributeName: aws.String(AttrLeaseOwner), KeyType: types.KeyTypeHash},
				{AttributeName: aws.String(AttrLeaseKey), KeyType: types.KeyTypeRange},
			},
			Projection: &types.Projection{ProjectionType: types.ProjectionTypeKeysOnly},
		}},
	})
	var inUse *types.ResourceInUseException
	if err != nil && !errors.As(err, &inUse) { // in use: another worker created it first
		return fmt.Errorf("create lease table %s: %w", t.name, err)
	}
	return t.waitActive(ctx)
}

func (t *LeaseTable) waitActive(ctx context.Context) error {
	delay := 50 * time.Millisecond
	for {
		out, err := t.client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: &t.name})
		if err != nil {
			return fmt.Errorf("describe lease table %s: %w", t.name, err)
		}
		if out.Table != nil && out.Table.TableStatus == types.TableStatusActive {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for lease table %s: %w", t.name, ctx.Err())
		case <-time.After(delay):
		}
		delay = min(2*delay, 2*time.Second)
	}
}

// List returns every lease, read with strongly consistent reads. Items of other entity types are left out.
func (t *LeaseTable) List(ctx context.Context) ([]Lease, error) {
	var leases []Lease
	in := &dynamodb.ScanInput{TableName: &t.name, ConsistentRead: aws.Bool(true)}
	for {
		out, err := t.client.Scan(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("scan lease table %s: %w", t.name, err)
		}
		for _, item := range out.Items {
			l, err := leaseFromItem(item)
			if errors.Is(err, errNotALease) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("scan lease table %s: %w", t.name, err)
			}
			leases = append(leases, l)
		}
		if len(out.LastEvaluatedKey) == 0 {
			return leases, nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}

// Get returns one lease (consistent read); found is false when it does not exist or the item is not a lease.
func (t *LeaseTable) Get(ctx context.Context, key string) (l Lease, found bool, err error) {
	out, err := t.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      &t.name,
		Key:            keyOf(key),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return Lease{}, false, fmt.Errorf("get lease %s: %w", key, err)
	}
	if len(out.Item) == 0 {
		return Lease{}, false, nil
	}
	l, err = leaseFromItem(out.Item)
	if errors.Is(err, errNotALease) {
		return Lease{}, false, nil
	}
	if err != nil {
		return Lease{}, false, fmt.Errorf("get lease %s: %w", key, err)
	}
	return l, true, nil
}

// createIfNotExists writes a new lease unless one with the same key exists; created says which happened.
func (t *LeaseTable) createIfNotExists(ctx context.Context, l Lease) (created bool, err error) {
	_, err = t.client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:           &t.name,
		Item:                leaseToItem(l),
		ConditionExpression: aws.String("attribute_not_exists(#k)"),
		ExpressionAttributeNames: map[string]string{
			"#k": AttrLeaseKey,
		},
	})
	if isConditionFailed(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("create lease %s: %w", l.Key, err)
	}
	return true, nil
}

// leaseWrite is one conditional UpdateItem of a lease: its clauses, conditions and placeholders. Every write names
// the attributes it changes, so the attributes this package does not know are kept.
type leaseWrite struct {
	op               string
	set, remove, add []string
	conditions       []string
	names            map[string]string
	values           map[string]types.AttributeValue
}

func newLeaseWrite(op string) *leaseWrite {
	return &leaseWrite{op: op, names: map[string]string{}, values: map[string]types.AttributeValue{}}
}

// name returns the placeholder of an attribute name.
func (w *leaseWrite) name(attr string) string {
	p := "#" + attr
	w.names[p] = attr
	return p
}

// str and num return the placeholder of a value.
func (w *leaseWrite) str(placeholder, v string) string {
	w.values[placeholder] = &types.AttributeValueMemberS{Value: v}
	return placeholder
}

func (w *leaseWrite) num(placeholder, v string) string {
	w.values[placeholder] = &types.AttributeValueMemberN{Value: v}
	return placeholder
}

// expectCounter conditions the write on l's counter, and makes it increment the counter.
func (w *leaseWrite) expectCounter(l Lease) *leaseWrite {
	c := w.name(AttrLeaseCounter)
	w.conditions = append(w.conditions, c+" = "+w.num(":prev", formatInt(l.Counter)))
	w.set = append(w.set, c+" = "+w.num(":next", formatInt(l.Counter+1)))
	return w
}

// expectHolder conditions the write on l's counter and on its owners as this worker last wrote or read them: the
// owner, and either no hand-off or the hand-off from this worker (CheckpointOwner). A lease another worker took, or
// whose hand-off began since, fails the condition.
func (w *leaseWrite) expectHolder(l Lease) *leaseWrite {
	w.expectCounter(l)
	w.conditions = append(w.conditions, w.name(AttrLeaseOwner)+" = "+w.str(":owner", l.Owner))
	cpo := w.name(AttrCheckpointOwner)
	if l.CheckpointOwner == "" {
		w.conditions = append(w.conditions, "attribute_not_exists("+cpo+")")
	} else {
		w.conditions = append(w.conditions, cpo+" = "+w.str(":cpowner", l.CheckpointOwner))
	}
	return w
}

// expression joins the clauses into an UpdateExpression.
func (w *leaseWrite) expression() string {
	var parts []string
	for _, c := range []struct {
		verb    string
		clauses []string
	}{{"SET", w.set}, {"REMOVE", w.remove}, {"ADD", w.add}} {
		if len(c.clauses) > 0 {
			parts = append(parts, c.verb+" "+strings.Join(c.clauses, ", "))
		}
	}
	return strings.Join(parts, " ")
}

// renew increments the counter of a lease this worker holds and records its throughput when throughputKBps is not
// negative. It fails with ErrLeaseLost when the counter or the owners changed since l was read or written.
func (t *LeaseTable) renew(ctx context.Context, l *Lease, throughputKBps float64) error {
	w := newLeaseWrite("renew").expectHolder(*l)
	if throughputKBps >= 0 {
		w.set = append(w.set, w.name(AttrThroughputKBps)+" = "+w.num(":tp", formatThroughput(throughputKBps)))
	}
	return t.write(ctx, l, w)
}

// take makes owner the holder of a lease, provided its counter did not change since l was read. A hand-off in
// progress is ended (as the Java KCL's takeLease does): the new holder reads from the checkpoint. On success l holds
// the item as written (with its latest checkpoint).
func (t *LeaseTable) take(ctx context.Context, l *Lease, owner string) error {
	w := newLeaseWrite("take").expectCounter(*l)
	w.set = append(w.set, w.name(AttrLeaseOwner)+" = "+w.str(":newowner", owner))
	w.remove = append(w.remove, w.name(AttrCheckpointOwner))
	if actual := l.ActualOwner(); actual != "" && actual != owner {
		w.add = append(w.add, w.name(AttrOwnerSwitchesSinceCheckpoint)+" "+w.num(":one", "1"))
	}
	return t.write(ctx, l, w)
}

// release removes this worker as the holder of a lease so that any worker can take it at once, without waiting for
// it to expire.
func (t *LeaseTable) release(ctx context.Context, l *Lease) error {
	w := newLeaseWrite("release").expectHolder(*l)
	w.remove = append(w.remove, w.name(AttrLeaseOwner))
	return t.write(ctx, l, w)
}

// startHandoff begins the graceful hand-off of a lease from its owner to newOwner, as the Java KCL 3.x's
// initiateGracefulLeaseHandoff: leaseOwner becomes newOwner and checkpointOwner the old owner, provided the owner is
// still l.Owner, no hand-off is in progress and the shard is not finished. The counter is left alone, so the old
// owner keeps renewing the lease until it has checkpointed and let go (finishHandoff).
func (t *LeaseTable) startHandoff(ctx context.Context, l *Lease, newOwner string) error {
	w := newLeaseWrite("start hand-off of")
	o, cpo := w.name(AttrLeaseOwner), w.name(AttrCheckpointOwner)
	w.set = append(w.set, o+" = "+w.str(":newowner", newOwner), cpo+" = "+w.str(":owner", l.Owner))
	w.conditions = append(w.conditions, o+" = :owner", "attribute_not_exists("+cpo+")",
		w.name(AttrCheckpoint)+" <> "+w.str(":end", CheckpointShardEnd))
	return t.write(ctx, l, w)
}

// finishHandoff ends a graceful hand-off on the old owner's side, after its last checkpoint, as the Java KCL 3.x's
// lease transfer: checkpointOwner is removed and the counter incremented, so the new owner (leaseOwner) starts
// from the checkpoint.
func (t *LeaseTable) finishHandoff(ctx context.Context, l *Lease) error {
	w := newLeaseWrite("finish hand-off of").expectHolder(*l)
	w.remove = append(w.remove, w.name(AttrCheckpointOwner))
	w.add = append(w.add, w.name(AttrOwnerSwitchesSinceCheckpoint)+" "+w.num(":one", "1"))
	return t.write(ctx, l, w)
}

// checkpoint records a processed position of a lease this worker holds and removes any pending checkpoint of the
// Java KCL. children is written with a SHARD_END checkpoint. It fails with ErrLeaseLost when the lease changed hands.
func (t *LeaseTable) checkpoint(ctx context.Context, l *Lease, sequenceNumber string, subSequenceNumber int64, children []string) error {
	w := newLeaseWrite("checkpoint").expectHolder(*l)
	w.set = append(w.set,
		w.name(AttrCheckpoint)+" = "+w.str(":cp", sequenceNumber),
		w.name(AttrCheckpointSubSequenceNumber)+" = "+w.num(":cps", formatInt(subSequenceNumber)),
		w.name(AttrOwnerSwitchesSinceCheckpoint)+" = "+w.num(":zero", "0"))
	if len(children) > 0 {
		w.set = append(w.set, w.name(AttrChildShardIDs)+" = :ch")
		w.values[":ch"] = &types.AttributeValueMemberSS{Value: children}
	}
	// As the Java KCL's checkpoint: a pending (two-phase) checkpoint is superseded.
	w.remove = append(w.remove, w.name(AttrPendingCheckpoint), w.name(AttrPendingCheckpointSubSequenceNumber),
		w.name(AttrPendingCheckpointState))
	return t.write(ctx, l, w)
}

// delete removes a lease, provided its counter did not change since l was read (a worker that renewed, took or
// checkpointed it meanwhile keeps it). deleted is false when the condition failed or the lease no longer exists.
func (t *LeaseTable) delete(ctx context.Context, l Lease) (deleted bool, err error) {
	_, err = t.client.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:                &t.name,
		Key:                      keyOf(l.Key),
		ConditionExpression:      aws.String("#c = :counter"),
		ExpressionAttributeNames: map[string]string{"#c": AttrLeaseCounter},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":counter": &types.AttributeValueMemberN{Value: formatInt(l.Counter)},
		},
	})
	if isConditionFailed(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("delete lease %s: %w", l.Key, err)
	}
	return true, nil
}

// write runs w on l's item, then replaces *l with the item as written. A failed condition is ErrLeaseLost.
func (t *LeaseTable) write(ctx context.Context, l *Lease, w *leaseWrite) error {
	out, err := t.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 &t.name,
		Key:                       keyOf(l.Key),
		UpdateExpression:          aws.String(w.expression()),
		ConditionExpression:       aws.String(strings.Join(w.conditions, " AND ")),
		ExpressionAttributeValues: w.values,
		ExpressionAttributeNames:  w.names,
		ReturnValues:              types.ReturnValueAllNew,
	})
	if isConditionFailed(err) {
		return fmt.Errorf("%s lease %s: %w", w.op, l.Key, ErrLeaseLost)
	}
	if err != nil {
		return fmt.Errorf("%s lease %s: %w", w.op, l.Key, err)
	}
	updated, err := leaseFromItem(out.Attributes)
	if err != nil {
		return fmt.Errorf("%s lease %s: %w", w.op, l.Key, err)
	}
	*l = updated
	return nil
}

// ownedKeys returns the keys of the leases whose leaseOwner is owner, read from LeaseOwnerIndexName (eventually
// consistent). It fails with errNoOwnerIndex when the table has no such index (or it cannot be read yet).
func (t *LeaseTable) ownedKeys(ctx context.Context, owner string) ([]string, error) {
	in := &dynamodb.QueryInput{
		TableName:                 &t.name,
		IndexName:                 aws.String(LeaseOwnerIndexName),
		KeyConditionExpression:    aws.String("#o = :owner"),
		ExpressionAttributeNames:  map[string]string{"#o": AttrLeaseOwner},
		ExpressionAttributeValues: map[string]types.AttributeValue{":owner": &types.AttributeValueMemberS{Value: owner}},
	}
	var keys []string
	for {
		out, err := t.client.Query(ctx, in)
		var apiErr smithy.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode() == "ValidationException" {
			return nil, fmt.Errorf("query %s of %s: %w: %s", LeaseOwnerIndexName, t.name, errNoOwnerIndex, apiErr.ErrorMessage())
		}
		if err != nil {
			return nil, fmt.Errorf("query %s of %s: %w", LeaseOwnerIndexName, t.name, err)
		}
		for _, item := range out.Items {
			if k, err := stringAttr(item, AttrLeaseKey); err == nil && k != "" {
				keys = append(keys, k)
			}
		}
		if len(out.LastEvaluatedKey) == 0 {
			return keys, nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}

func isConditionFailed(err error) bool {
	var ccf *types.ConditionalCheckFailedException
	return errors.As(err, &ccf)
}

func keyOf(key string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{AttrLeaseKey: &types.AttributeValueMemberS{Value: key}}
}

// leaseToItem serializes a lease as the Java KCL 3.x does: optional attributes are left out when empty, and the
// entity type is LEASE.
func leaseToItem(l Lease) map[string]types.AttributeValue {
	item := map[string]types.AttributeValue{
		AttrEntityType:                   &types.AttributeValueMemberS{Value: EntityTypeLease},
		AttrLeaseKey:                     &types.AttributeValueMemberS{Value: l.Key},
		AttrLeaseCounter:                 &types.AttributeValueMemberN{Value: formatInt(l.Counter)},
		AttrCheckpoint:                   &types.AttributeValueMemberS{Value: l.Checkpoint},
		AttrCheckpointSubSequenceNumber:  &types.AttributeValueMemberN{Value: formatInt(l.CheckpointSubSequenceNumber)},
		AttrOwnerSwitchesSinceCheckpoint: &types.AttributeValueMemberN{Value: formatInt(l.OwnerSwitchesSinceCheckpoint)},
	}
	if l.Owner != "" {
		item[AttrLeaseOwner] = &types.AttributeValueMemberS{Value: l.Owner}
	}
	if len(l.ParentShardIDs) > 0 {
		item[AttrParentShardID] = &types.AttributeValueMemberSS{Value: l.ParentShardIDs}
	}
	if len(l.ChildShardIDs) > 0 {
		item[AttrChildShardIDs] = &types.AttributeValueMemberSS{Value: l.ChildShardIDs}
	}
	if l.StartingHashKey != "" && l.EndingHashKey != "" {
		item[AttrStartingHashKey] = &types.AttributeValueMemberS{Value: l.StartingHashKey}
		item[AttrEndingHashKey] = &types.AttributeValueMemberS{Value: l.EndingHashKey}
	}
	if l.HasThroughput {
		item[AttrThroughputKBps] = &types.AttributeValueMemberN{Value: formatThroughput(l.ThroughputKBps)}
	}
	if l.CheckpointOwner != "" {
		item[AttrCheckpointOwner] = &types.AttributeValueMemberS{Value: l.CheckpointOwner}
	}
	return item
}

// formatThroughput writes a throughput with 6 decimals at most, as the Java KCL 3.x rounds it (numbers too large
// for that are written whole).
func formatThroughput(kbps float64) string {
	if math.Abs(kbps) < 1e12 {
		return strconv.FormatFloat(math.Round(kbps*1e6)/1e6, 'f', -1, 64)
	}
	return strconv.FormatFloat(kbps, 'g', -1, 64)
}

// leaseFromItem parses a lease item, tolerating the attributes of the Java KCL that this package does not use. An
// item of another entity type fails with errNotALease.
func leaseFromItem(item map[string]types.AttributeValue) (Lease, error) {
	var l Lease
	entity, err := stringAttr(item, AttrEntityType)
	if err != nil {
		return Lease{}, err
	}
	if entity != "" && entity != EntityTypeLease {
		return Lease{}, fmt.Errorf("item of entity type %q: %w", entity, errNotALease)
	}
	if l.Key, err = stringAttr(item, AttrLeaseKey); err != nil {
		return Lease{}, err
	}
	if l.Key == "" {
		return Lease{}, fmt.Errorf("lease item without %s", AttrLeaseKey)
	}
	if l.Owner, err = stringAttr(item, AttrLeaseOwner); err != nil {
		return Lease{}, err
	}
	if l.Checkpoint, err = stringAttr(item, AttrCheckpoint); err != nil {
		return Lease{}, err
	}
	if l.StartingHashKey, err = stringAttr(item, AttrStartingHashKey); err != nil {
		return Lease{}, err
	}
	if l.EndingHashKey, err = stringAttr(item, AttrEndingHashKey); err != nil {
		return Lease{}, err
	}
	if l.Counter, err = numberAttr(item, AttrLeaseCounter); err != nil {
		return Lease{}, err
	}
	if l.CheckpointSubSequenceNumber, err = numberAttr(item, AttrCheckpointSubSequenceNumber); err != nil {
		return Lease{}, err
	}
	if l.OwnerSwitchesSinceCheckpoint, err = numberAttr(item, AttrOwnerSwitchesSinceCheckpoint); err != nil {
		return Lease{}, err
	}
	if l.ParentShardIDs, err = stringSetAttr(item, AttrParentShardID); err != nil {
		return Lease{}, err
	}
	if l.ChildShardIDs, err = stringSetAttr(item, AttrChildShardIDs); err != nil {
		return Lease{}, err
	}
	if l.CheckpointOwner, err = stringAttr(item, AttrCheckpointOwner); err != nil {
		return Lease{}, err
	}
	if l.ThroughputKBps, l.HasThroughput, err = floatAttr(item, AttrThroughputKBps); err != nil {
		return Lease{}, err
	}
	return l, nil
}

func stringAttr(item map[string]types.AttributeValue, name string) (string, error) {
	v, ok := item[name]
	if !ok {
		return "", nil
	}
	s, ok := v.(*types.AttributeValueMemberS)
	if !ok || s == nil {
		return "", fmt.Errorf("lease attribute %s: want a string, got %T", name, v)
	}
	return s.Value, nil
}

func numberAttr(item map[string]types.AttributeValue, name string) (int64, error) {
	v, ok := item[name]
	if !ok {
		return 0, nil
	}
	n, ok := v.(*types.AttributeValueMemberN)
	if !ok || n == nil {
		return 0, fmt.Errorf("lease attribute %s: want a number, got %T", name, v)
	}
	i, err := strconv.ParseInt(n.Value, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("lease attribute %s: %w", name, err)
	}
	return i, nil
}

// floatAttr reads a finite number attribute; ok is false when the item does not hold it.
func floatAttr(item map[string]types.AttributeValue, name string) (v float64, ok bool, err error) {
	a, found := item[name]
	if !found {
		return 0, false, nil
	}
	n, isNumber := a.(*types.AttributeValueMemberN)
	if !isNumber || n == nil {
		return 0, false, fmt.Errorf("lease attribute %s: want a number, got %T", name, a)
	}
	v, err = strconv.ParseFloat(n.Value, 64)
	if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, false, fmt.Errorf("lease attribute %s: %q is not a finite number", name, n.Value)
	}
	return v, true, nil
}

func stringSetAttr(item map[string]types.AttributeValue, name string) ([]string, error) {
	v, ok := item[name]
	if !ok {
		return nil, nil
	}
	switch s := v.(type) {
	case *types.AttributeValueMemberSS:
		if s != nil {
			return s.Value, nil
		}
	case *types.AttributeValueMemberL: // tolerated: some tools write lists
		if s == nil {
			break
		}
		out := make([]string, 0, len(s.Value))
		for _, e := range s.Value {
			str, ok := e.(*types.AttributeValueMemberS)
			if !ok || str == nil {
				return nil, fmt.Errorf("lease attribute %s: list element %T", name, e)
			}
			out = append(out, str.Value)
		}
		return out, nil
	}
	return nil, fmt.Errorf("lease attribute %s: want a string set, got %T", name, v)
}
