package runreport

import (
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// TestLinesKeepsEveryLineOfConcurrentWriters prevents an id list that loses or interleaves
// lines when clusters write theirs at once.
func TestLinesKeepsEveryLineOfConcurrentWriters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.ids.gz")
	l, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 100 {
				l.Each([]string{"missing", "es8", "program"}, []string{"1", "2"})
			}
		})
	}
	wg.Wait()
	l.Line("failed:retryable", "os2", "program", "3")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	var nilList *Lines
	nilList.Line("ignored")
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(z)
	if err != nil {
		t.Fatal(err)
	}
	want := 4*100*len("missing\tes8\tprogram\t1\n")*2 + len("failed:retryable\tos2\tprogram\t3\n")
	if len(b) != want {
		t.Fatalf("%d bytes of lines, want %d", len(b), want)
	}
}
