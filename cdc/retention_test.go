package cdc

import (
	"context"
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

type fakeLogs struct {
	files []string
	err   error
}

func (f fakeLogs) BinaryLogs(context.Context) ([]string, error) { return f.files, f.err }

func TestRetentionGaugesNameTheFileThePurgeTakesNextAndKeepTheirValuesWhenTheListFails(t *testing.T) {
	m := NewRetentionMetrics(nil)
	ctx := context.Background()
	if err := m.observe(ctx, fakeLogs{files: []string{"mariadb-bin.000041", "mariadb-bin.000042", "mariadb-bin.000043"}}); err != nil {
		t.Fatal(err)
	}
	if o, n, f := testutil.ToFloat64(m.Oldest), testutil.ToFloat64(m.Newest), testutil.ToFloat64(m.Files); o != 41 || n != 43 || f != 3 {
		t.Fatalf("oldest %v newest %v files %v, want 41 43 3", o, n, f)
	}
	if err := m.observe(ctx, fakeLogs{err: errors.New("access denied; you need BINLOG MONITOR")}); err == nil {
		t.Fatal("a failed listing reported no error")
	}
	if err := m.observe(ctx, fakeLogs{files: []string{"mariadb-bin"}}); err == nil {
		t.Fatal("a file name without a numeric suffix was accepted")
	}
	if o := testutil.ToFloat64(m.Oldest); o != 41 {
		t.Fatalf("oldest %v after failed listings, want the last good 41", o)
	}
}
