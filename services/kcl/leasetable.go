package kcl

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
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
}

// ErrLeaseLost means a conditional write on a lease failed: another worker took it (or it was released), so this
// worker must stop processing the shard at once, without checkpointing.
var ErrLeaseLost = errors.New("lease lost")

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

// CreateIfMissing creates the table (on-demand billing, hash key leaseKey) when it does not exist and waits until it
// is active.
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
		TableName:            &t.name,
		BillingMode:          types.BillingModePayPerRequest,
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String(LeaseTableHashKey), KeyType: types.KeyTypeHash}},
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String(LeaseTableHashKey), AttributeType: types.ScalarAttributeTypeS}},
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

// List returns every lease, read with strongly consistent reads.
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

// Get returns one lease (consistent read); found is false when it does not exist.
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

// renew increments the counter of a lease this worker holds. It fails with ErrLeaseLost when the counter or the owner
// changed since l was read or written.
func (t *LeaseTable) renew(ctx context.Context, l *Lease) error {
	return t.update(ctx, l, "renew", l.Owner, "SET #c = :next", nil, nil)
}

// take makes owner the holder of a lease, provided its counter did not change since l was read. On success l holds
// the item as written (with its latest checkpoint).
func (t *LeaseTable) take(ctx context.Context, l *Lease, owner string) error {
	set := "SET #c = :next, #o = :owner"
	values := map[string]types.AttributeValue{":owner": &types.AttributeValueMemberS{Value: owner}}
	names := map[string]string{"#o": AttrLeaseOwner}
	if l.Owner != "" && l.Owner != owner {
		set += " ADD #sw :one"
		values[":one"] = &types.AttributeValueMemberN{Value: "1"}
		names["#sw"] = AttrOwnerSwitchesSinceCheckpoint
	}
	return t.update(ctx, l, "take", "", set, values, names)
}

// release removes this worker as the holder of a lease so that any worker can take it at once, without waiting for
// it to expire.
func (t *LeaseTable) release(ctx context.Context, l *Lease) error {
	return t.update(ctx, l, "release", l.Owner, "SET #c = :next REMOVE #o", nil, map[string]string{"#o": AttrLeaseOwner})
}

// checkpoint records a processed position of a lease this worker holds and removes any pending checkpoint of the
// Java KCL. children is written with a SHARD_END checkpoint. It fails with ErrLeaseLost when the lease changed hands.
func (t *LeaseTable) checkpoint(ctx context.Context, l *Lease, sequenceNumber string, subSequenceNumber int64, children []string) error {
	set := "SET #c = :next, #cp = :cp, #cps = :cps, #sw = :zero"
	values := map[string]types.AttributeValue{
		":cp":   &types.AttributeValueMemberS{Value: sequenceNumber},
		":cps":  &types.AttributeValueMemberN{Value: formatInt(subSequenceNumber)},
		":zero": &types.AttributeValueMemberN{Value: "0"},
	}
	names := map[string]string{
		"#cp":  AttrCheckpoint,
		"#cps": AttrCheckpointSubSequenceNumber,
		"#sw":  AttrOwnerSwitchesSinceCheckpoint,
	}
	if len(children) > 0 {
		set += ", #ch = :ch"
		values[":ch"] = &types.AttributeValueMemberSS{Value: children}
		names["#ch"] = AttrChildShardIDs
	}
	// As the Java KCL's checkpoint: a pending (two-phase) checkpoint is superseded.
	set += " REMOVE #pcp, #pcps, #pcst"
	names["#pcp"] = AttrPendingCheckpoint
	names["#pcps"] = AttrPendingCheckpointSubSequenceNumber
	names["#pcst"] = AttrPendingCheckpointState
	return t.update(ctx, l, "checkpoint", l.Owner, set, values, names)
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

// update runs a conditional UpdateItem on l's counter (and owner, when expectOwner is set), then replaces *l with the
// item as written.
func (t *LeaseTable) update(ctx context.Context, l *Lease, op, expectOwner, expr string, values map[string]types.AttributeValue, names map[string]string) error {
	vals := map[string]types.AttributeValue{
		":prev": &types.AttributeValueMemberN{Value: formatInt(l.Counter)},
		":next": &types.AttributeValueMemberN{Value: formatInt(l.Counter + 1)},
	}
	for k, v := range values {
		vals[k] = v
	}
	nm := map[string]string{"#c": AttrLeaseCounter}
	for k, v := range names {
		nm[k] = v
	}
	cond := "#c = :prev"
	if expectOwner != "" {
		cond += " AND #owner = :expowner"
		vals[":expowner"] = &types.AttributeValueMemberS{Value: expectOwner}
		nm["#owner"] = AttrLeaseOwner
	}
	out, err := t.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 &t.name,
		Key:                       keyOf(l.Key),
		UpdateExpression:          &expr,
		ConditionExpression:       &cond,
		ExpressionAttributeValues: vals,
		ExpressionAttributeNames:  nm,
		ReturnValues:              types.ReturnValueAllNew,
	})
	if isConditionFailed(err) {
		return fmt.Errorf("%s lease %s: %w", op, l.Key, ErrLeaseLost)
	}
	if err != nil {
		return fmt.Errorf("%s lease %s: %w", op, l.Key, err)
	}
	updated, err := leaseFromItem(out.Attributes)
	if err != nil {
		return fmt.Errorf("%s lease %s: %w", op, l.Key, err)
	}
	*l = updated
	return nil
}

func isConditionFailed(err error) bool {
	var ccf *types.ConditionalCheckFailedException
	return errors.As(err, &ccf)
}

func keyOf(key string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{AttrLeaseKey: &types.AttributeValueMemberS{Value: key}}
}

// leaseToItem serializes a lease as the Java KCL does: optional attributes are left out when empty.
func leaseToItem(l Lease) map[string]types.AttributeValue {
	item := map[string]types.AttributeValue{
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
	return item
}

// leaseFromItem parses a lease item, tolerating the attributes of the Java KCL that this package does not use.
func leaseFromItem(item map[string]types.AttributeValue) (Lease, error) {
	var l Lease
	var err error
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
