package settings

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/streamproc/streamproc/services/multilang"
)

// A MultiLangDaemon properties file (the consumer's -p or --properties-file, as the Java daemon takes it) gives the
// same settings as the environment: each key it knows stands for one variable below, and a variable set in the
// environment wins over the file (a container's environment is the deployment's).

// propertyKind is how a property's value is checked and turned into its variable's value.
type propertyKind int

const (
	text propertyKind = iota
	millis
	seconds
	wholeNumber
	boolean
	initialPosition
	retrievalMode
	streamARN
)

// property is a key of the Java daemon's properties file that this consumer understands.
type property struct {
	env  string
	kind propertyKind
}

// properties maps the keys of the Java daemon's properties file to the consumer's variables.
var properties = map[string]property{
	"executableName":               {EnvMultiLangCommand, text},
	"streamName":                   {EnvStreamName, text},
	"streamArn":                    {EnvStreamName, streamARN},
	"applicationName":              {EnvApplicationName, text},
	"initialPositionInStream":      {EnvInitialPosition, initialPosition},
	"regionName":                   {EnvRegion, text},
	"failoverTimeMillis":           {EnvFailoverTime, millis},
	"maxRecords":                   {EnvMaxRecords, wholeNumber},
	"idleTimeBetweenReadsInMillis": {EnvPollIdleInterval, millis},
	"callProcessRecordsEvenForEmptyRecordList": {EnvProcessEmptyBatches, boolean},
	"timeoutInSeconds":                         {EnvMultiLangTimeout, seconds},
	"retrievalMode":                            {EnvReadMode, retrievalMode},
	"workerId":                                 {EnvWorkerID, text},
	"shardSyncIntervalMillis":                  {EnvShardSyncInterval, millis},
	"kinesisEndpoint":                          {EnvKinesisEndpoint, text},
	"dynamoDBEndpoint":                         {EnvDynamoDBEndpoint, text},
	// multiLangProtocolVersion is this consumer's own key (the Java daemons each speak one version).
	"multiLangProtocolVersion": {EnvMultiLangProtocolVersion, wholeNumber},
}

// acceptedProperties are keys of the Java daemon that need nothing here: the language is the executable's
// business, and credentials always come from the AWS SDK's default chain (the task role on ECS).
var acceptedProperties = []string{"processingLanguage", "AwsCredentialsProvider", "AwsCredentialsProviderDynamoDB",
	"AwsCredentialsProviderCloudWatch"}

// PropertiesFile reads a MultiLangDaemon properties file and returns the variables it sets, for LoadWithProperties,
// and warnings for the keys it ignores. A bad value is an *Error naming the key and the file. A relative
// executableName that is not found on PATH is taken from the file's folder, where the Java daemon's samples keep
// their processor.
func PropertiesFile(path string) (env map[string]string, warnings []string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("properties file: %w", err)
	}
	defer f.Close()
	props, err := multilang.ParseProperties(f)
	if err != nil {
		return nil, nil, fmt.Errorf("properties file %s: %w", path, err)
	}
	env = map[string]string{EnvProcessor: ProcessorMultiLang}
	var errs []error
	for _, key := range slices.Sorted(maps.Keys(props)) {
		value := strings.TrimSpace(props[key])
		p, known := properties[key]
		switch {
		case known:
			v, want := p.convert(value)
			if want != "" {
				errs = append(errs, &Error{Name: key + " (" + path + ")", Value: props[key], Want: want})
				continue
			}
			env[p.env] = v
		case slices.ContainsFunc(acceptedProperties, func(k string) bool { return strings.EqualFold(k, key) }):
			if strings.HasPrefix(strings.ToLower(key), "awscredentialsprovider") && value != "DefaultCredentialsProvider" {
				warnings = append(warnings, fmt.Sprintf("%s = %s in %s: credentials come from the AWS SDK's default chain (the task role on ECS)", key, value, path))
			}
		default:
			warnings = append(warnings, fmt.Sprintf("%s in %s is not a setting this consumer knows; ignored", key, path))
		}
	}
	if len(errs) > 0 {
		return nil, warnings, errors.Join(errs...)
	}
	if cmd := env[EnvMultiLangCommand]; cmd != "" {
		env[EnvMultiLangCommand] = resolveNextTo(cmd, filepath.Dir(path))
	}
	return env, warnings, nil
}

// convert checks a property's value and writes it as its variable's; want says what was wanted when it is bad.
func (p property) convert(v string) (value, want string) {
	switch p.kind {
	case millis, seconds, wholeNumber:
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return "", "want a whole number >= 0"
		}
		switch p.kind {
		case millis:
			return v + "ms", ""
		case seconds:
			return v + "s", ""
		}
		return v, ""
	case boolean:
		if b, err := strconv.ParseBool(v); err == nil {
			return strconv.FormatBool(b), ""
		}
		return "", "want true or false"
	case initialPosition:
		if slices.Contains([]string{"TRIM_HORIZON", "LATEST", "AT_TIMESTAMP"}, strings.ToUpper(v)) {
			return strings.ToUpper(v), ""
		}
		return "", "want TRIM_HORIZON, LATEST or AT_TIMESTAMP"
	case retrievalMode:
		switch strings.ToUpper(v) {
		case "FANOUT", "DEFAULT": // the Java daemon's default is enhanced fan-out
			return "fanout", ""
		case "POLLING":
			return "polling", ""
		}
		return "", "want FANOUT, POLLING or DEFAULT"
	case streamARN:
		// arn:aws:kinesis:REGION:ACCOUNT:stream/NAME: the Java daemon reads the stream name from it.
		parts := strings.SplitN(v, ":", 6)
		if len(parts) != 6 || parts[0] != "arn" || parts[2] != "kinesis" || !strings.HasPrefix(parts[5], "stream/") {
			return "", "want a Kinesis stream ARN such as arn:aws:kinesis:us-east-1:111122223333:stream/name"
		}
		return strings.TrimPrefix(parts[5], "stream/"), ""
	}
	if v == "" {
		return "", "want a value"
	}
	return v, ""
}

// resolveNextTo returns command with its program made absolute when the program is a relative name that is not
// on PATH but is a file in dir.
func resolveNextTo(command, dir string) string {
	fields := strings.Fields(command)
	if len(fields) == 0 || filepath.IsAbs(fields[0]) {
		return command
	}
	if !strings.ContainsRune(fields[0], filepath.Separator) {
		if _, err := exec.LookPath(fields[0]); err == nil {
			return command
		}
	}
	candidate := filepath.Join(dir, fields[0])
	if st, err := os.Stat(candidate); err == nil && !st.IsDir() {
		if abs, err := filepath.Abs(candidate); err == nil {
			fields[0] = abs
		}
		return strings.Join(fields, " ")
	}
	return command
}

// LoadWithProperties is Load over the environment (lookup) and, for what it leaves unset, the variables a
// properties file sets (PropertiesFile).
func LoadWithProperties(lookup func(string) (string, bool), fromFile map[string]string) (Settings, error) {
	return Load(func(name string) (string, bool) {
		if v, ok := lookup(name); ok && v != "" {
			return v, true
		}
		v, ok := fromFile[name]
		return v, ok
	})
}
