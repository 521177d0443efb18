package pipeline

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	consumersettings "github.com/streamproc/streamproc/services/consumer/settings"
)

// LakeEnabled tells whether the workers land the records in the local lake: Config.Sink is SinkS3 and they run no
// MultiLang processor.
func (p *Pipeline) LakeEnabled() bool {
	return p.cfg.Sink == SinkS3 && p.cfg.MultiLangCommand == "" && p.cfg.PropertiesFile == ""
}

// S3Endpoint is moto's S3 endpoint with SinkS3, else "".
func (p *Pipeline) S3Endpoint() string { return p.emu.S3Endpoint }

// createLakeBucket creates LakeBucket when the workers write to it.
func (p *Pipeline) createLakeBucket(ctx context.Context) error {
	if !p.LakeEnabled() {
		return nil
	}
	if _, err := p.emu.S3Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(LakeBucket)}); err != nil {
		return fmt.Errorf("create the lake's bucket: %w", err)
	}
	return nil
}

// lakeEnv is the S3 sink's environment of worker name: moto's endpoint, the bucket, a short object age, and a
// spill directory of its own under Config.Dir.
func (p *Pipeline) lakeEnv(name string) []string {
	spill := filepath.Join(p.cfg.Dir, "spill", name)
	if err := os.MkdirAll(spill, 0o755); err != nil {
		spill = os.TempDir() // the consumer says at start if this one is not writable either
	}
	return []string{
		consumersettings.EnvProcessor + "=" + consumersettings.ProcessorS3,
		consumersettings.EnvS3Endpoint + "=" + p.emu.S3Endpoint,
		consumersettings.EnvS3Bucket + "=" + LakeBucket,
		consumersettings.EnvS3MaxObjectAge + "=" + p.cfg.LakeMaxObjectAge.String(),
		consumersettings.EnvS3SpillDir + "=" + spill,
	}
}
