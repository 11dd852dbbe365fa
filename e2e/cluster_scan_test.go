package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/elastic/go-elasticsearch/v8/esapi"

	"github.com/wyehq/wye/cluster"
)

// scanTestDocs documents are written to the index of the scan and get tests, doc i at version
// versionBase+i with title "Program i": many pages, in 3 shards so that an order that repeats
// across shards (_doc alone) would lose or repeat documents.
const scanTestDocs = 12_000

// scanTestPage is the page size of the scans: 12 pages of 1,000.
const scanTestPage = 1_000

// TestScanReturnsEveryDocumentOnceWhileWritesContinue prevents a resync from missing or
// double-counting documents: on every engine, Count says 12,000 and Scan over 3 shards returns
// each document that existed when it began exactly once, with its version (and its source
// when asked), while another goroutine keeps indexing and refreshing new documents during the
// scan.
func TestScanReturnsEveryDocumentOnceWhileWritesContinue(t *testing.T) {
	for _, name := range clusterNames {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
			defer cancel()
			c := scanTestClient(t, name)
			index := createScanTestIndex(t, ctx, c, scanTestDocs)
			if n, err := c.Count(ctx, index); err != nil || n != scanTestDocs {
				t.Fatalf("count = %d, %v; want %d", n, err, scanTestDocs)
			}

			// Timing of the 12,000 documents, with no writer: ids only, then with sources.
			for _, source := range []bool{false, true} {
				n := 0
				start := time.Now()
				if err := c.Scan(ctx, index, scanTestPage, source, func(hits []cluster.Hit) error {
					n += len(hits)
					return nil
				}); err != nil {
					t.Fatalf("timed scan (source %t): %v", source, err)
				}
				if n != scanTestDocs {
					t.Fatalf("timed scan (source %t): %d documents, want %d", source, n, scanTestDocs)
				}
				t.Logf("%s: scan of %d documents in pages of %d (source %t): %v", name, n, scanTestPage, source, time.Since(start))
			}
			for k, source := range []bool{false, true} {
				w := startScanTestWriter(ctx, c, index, (k+1)*1_000_000)
				seen := map[string]cluster.Hit{}
				var dups []string
				pages := 0
				err := c.Scan(ctx, index, scanTestPage, source, func(hits []cluster.Hit) error {
					pages++
					if len(hits) > scanTestPage {
						return fmt.Errorf("page of %d hits, want at most %d", len(hits), scanTestPage)
					}
					for _, h := range hits {
						if _, ok := seen[h.ID]; ok {
							dups = append(dups, h.ID)
						}
						seen[h.ID] = h
					}
					if pages == 1 {
						// New documents are written and made visible while this scan's view is
						// open: wait for two more refreshed batches of the writer.
						return w.waitBatches(ctx, w.batches.Load()+2)
					}
					return nil
				})
				written := w.stop()
				if err != nil {
					t.Fatalf("scan (source %t): %v", source, err)
				}
				if written == 0 {
					t.Fatalf("scan (source %t): the writer wrote nothing during the scan", source)
				}
				if len(dups) > 0 {
					t.Errorf("scan (source %t): %d ids seen twice, e.g. %v", source, len(dups), dups[:min(5, len(dups))])
				}
				checkScanTestHits(t, seen, source)
				t.Logf("%s: scan (source %t): %d pages, %d hits (%d pre-existing), %d new documents written meanwhile",
					name, source, pages, len(seen), scanTestDocs, written)
			}

			requireNoOpenScan(t, ctx, c, index)
		})
	}
}

// TestScanReleasesItsViewOnErrorAndCancellation prevents a resync that fails or is cancelled
// from leaving point-in-times or scrolls open on the cluster (each pins segments and heap
// until its keep-alive expires).
func TestScanReleasesItsViewOnErrorAndCancellation(t *testing.T) {
	for _, name := range clusterNames {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			c := scanTestClient(t, name)
			index := createScanTestIndex(t, ctx, c, 4*scanTestPage)

			errStop := errors.New("stop")
			pages := 0
			err := c.Scan(ctx, index, scanTestPage, false, func([]cluster.Hit) error {
				if pages++; pages == 2 {
					return errStop
				}
				return nil
			})
			if !errors.Is(err, errStop) || pages != 2 {
				t.Fatalf("scan stopped by fn on page 2: err %v after %d pages, want errStop after 2", err, pages)
			}
			requireNoOpenScan(t, ctx, c, index)

			scanCtx, stop := context.WithCancel(ctx)
			pages = 0
			err = c.Scan(scanCtx, index, scanTestPage, true, func([]cluster.Hit) error {
				if pages++; pages == 3 {
					stop()
				}
				return nil
			})
			var te *cluster.TransportError
			if !errors.As(err, &te) || !errors.Is(err, context.Canceled) || pages != 3 {
				t.Fatalf("scan cancelled on page 3: err %v (%T) after %d pages, want a cancelled *TransportError after 3", err, err, pages)
			}
			requireNoOpenScan(t, ctx, c, index)
		})
	}
}

// TestGetReturnsOnlyThePresentDocuments prevents a resync from mistaking missing documents
// for present ones or reading wrong versions: one Get of 1,500 ids, 500 of them absent,
// returns exactly the 1,000 present ones with their versions, and their sources when asked.
func TestGetReturnsOnlyThePresentDocuments(t *testing.T) {
	for _, name := range clusterNames {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			c := scanTestClient(t, name)
			index := createScanTestIndex(t, ctx, c, scanTestDocs)

			var ids []string
			want := map[string]int{}
			for k := 0; k < 1_500; k++ {
				if k%3 == 2 {
					ids = append(ids, fmt.Sprintf("absent-%d", k))
					continue
				}
				i := k * 7 % scanTestDocs // spread over the shards and the index
				ids = append(ids, docID(i))
				want[docID(i)] = i
			}
			if len(want) != 1_000 {
				t.Fatalf("test setup: %d distinct present ids, want 1000", len(want))
			}
			for _, source := range []bool{false, true} {
				start := time.Now()
				got, err := c.Get(ctx, index, ids, source)
				if err != nil {
					t.Fatalf("get (source %t): %v", source, err)
				}
				t.Logf("%s: get of %d ids (source %t): %d found in %v", name, len(ids), source, len(got), time.Since(start))
				if len(got) != len(want) {
					t.Errorf("get (source %t): %d documents, want %d", source, len(got), len(want))
				}
				for id, h := range got {
					i, ok := want[id]
					if !ok {
						t.Errorf("get (source %t): absent id %s returned: %+v", source, id, h)
						continue
					}
					checkScanTestHit(t, h, i, source)
				}
			}
		})
	}
}

// TestResyncReadsOfAMissingIndexAreRetryableErrors prevents a resync from reading a missing
// index as an empty one: Get, Count and Scan of it fail with a *StatusError that names
// index_not_found_exception, Retryable as every missing index is.
func TestResyncReadsOfAMissingIndexAreRetryableErrors(t *testing.T) {
	for _, name := range clusterNames {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			c := scanTestClient(t, name)
			index := fmt.Sprintf("wye-e2e-scan-missing-%s-%d", name, time.Now().UnixNano())

			_, getErr := c.Get(ctx, index, []string{"a", "b"}, true)
			_, countErr := c.Count(ctx, index)
			scanErr := c.Scan(ctx, index, scanTestPage, false, func([]cluster.Hit) error {
				return errors.New("fn called for a missing index")
			})
			for read, err := range map[string]error{"get": getErr, "count": countErr, "scan": scanErr} {
				var se *cluster.StatusError
				if !errors.As(err, &se) || se.Type != "index_not_found_exception" || cluster.ClassOf(err) != cluster.Retryable {
					t.Errorf("%s of a missing index: err = %v (%T), want a retryable index_not_found_exception *StatusError", read, err, err)
					continue
				}
				t.Logf("%s: %s of a missing index: %v", name, read, err)
			}
		})
	}
}

func scanTestClient(t *testing.T, name string) *cluster.Client {
	t.Helper()
	c, err := cluster.New(cluster.Options{Name: name, URLs: []string{clusterURL(t, name)}, RequestTimeout: time.Minute})
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	return c
}

// createScanTestIndex creates a uniquely named index of 3 shards holding docs documents (doc
// i at version versionBase+i, titled "Program i"), refreshed, and deletes it at cleanup.
func createScanTestIndex(t *testing.T, ctx context.Context, c *cluster.Client, docs int) string {
	t.Helper()
	index := fmt.Sprintf("wye-e2e-scan-%s-%d", c.Name(), time.Now().UnixNano())
	mapping := strings.Replace(clusterTestMapping, `"number_of_shards": 1`, `"number_of_shards": 3`, 1)
	do(t, ctx, c, "create_index", esapi.IndicesCreateRequest{Index: index, Body: strings.NewReader(mapping)})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		status, body, err := c.Do(ctx, esapi.IndicesDeleteRequest{Index: []string{index}})
		if err != nil || status != http.StatusOK {
			t.Errorf("delete index %s: status %d err %v body %s", index, status, err, body)
		}
	})
	const chunk = 2_000
	for start := 0; start < docs; start += chunk {
		var b strings.Builder
		for i := start; i < min(start+chunk, docs); i++ {
			b.WriteString(indexAction(index, i, versionBase+int64(i), fmt.Sprintf("Program %d", i)))
		}
		for j, it := range bulk(t, ctx, c, b.String()) {
			if it.Class != cluster.OK {
				t.Fatalf("doc %d: %+v", start+j, it)
			}
		}
	}
	do(t, ctx, c, "refresh", esapi.IndicesRefreshRequest{Index: []string{index}})
	return index
}

// scanTestWriter indexes batches of new documents (ids from 1,000,000 up, never one of the
// pre-existing ones), each batch refreshed, until stopped. Its only goroutine is waited for
// by stop.
type scanTestWriter struct {
	batches atomic.Int64
	docs    atomic.Int64
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	err     atomic.Pointer[error]
}

// startScanTestWriter starts a writer of the documents from id first up.
func startScanTestWriter(ctx context.Context, c *cluster.Client, index string, first int) *scanTestWriter {
	ctx, cancel := context.WithCancel(ctx)
	w := &scanTestWriter{cancel: cancel}
	next := first
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		const batch = 100
		for ctx.Err() == nil {
			var b strings.Builder
			for i := next; i < next+batch; i++ {
				b.WriteString(indexAction(index, i, versionBase+int64(i), fmt.Sprintf("New %d", i)))
			}
			items, err := c.Bulk(ctx, []byte(b.String()), cluster.WithRefresh("true"))
			if err != nil {
				if ctx.Err() == nil {
					w.err.Store(&err)
				}
				return
			}
			for _, it := range items {
				if it.Class != cluster.OK {
					err := fmt.Errorf("new doc %s: %s %s", it.ID, it.ErrType, it.Reason)
					w.err.Store(&err)
					return
				}
			}
			next += batch
			w.docs.Add(batch)
			w.batches.Add(1)
		}
	}()
	return w
}

// waitBatches polls until n batches are written and refreshed, the writer fails, or ctx ends.
func (w *scanTestWriter) waitBatches(ctx context.Context, n int64) error {
	deadline := time.Now().Add(2 * time.Minute)
	for w.batches.Load() < n {
		if e := w.err.Load(); e != nil {
			return fmt.Errorf("writer: %w", *e)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("writer wrote %d batches, want %d", w.batches.Load(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// stop stops the writer, waits for it and returns how many documents it wrote.
func (w *scanTestWriter) stop() int64 {
	w.cancel()
	w.wg.Wait()
	return w.docs.Load()
}

// checkScanTestHits requires every pre-existing document in hits, right, and nothing else but
// the writer's new documents.
func checkScanTestHits(t *testing.T, hits map[string]cluster.Hit, source bool) {
	t.Helper()
	missing := 0
	for i := 0; i < scanTestDocs; i++ {
		h, ok := hits[docID(i)]
		if !ok {
			if missing++; missing <= 5 {
				t.Errorf("scan (source %t): %s missing", source, docID(i))
			}
			continue
		}
		checkScanTestHit(t, h, i, source)
	}
	if missing > 0 {
		t.Errorf("scan (source %t): %d of %d pre-existing documents missing", source, missing, scanTestDocs)
	}
	for id := range hits {
		var n int
		if _, err := fmt.Sscanf(id, "doc-%d", &n); err != nil || (n >= scanTestDocs && n < 1_000_000) {
			t.Errorf("scan (source %t): unexpected id %s", source, id)
		}
	}
}

// checkScanTestHit requires h to be doc i as written: its version, and its source or none.
func checkScanTestHit(t *testing.T, h cluster.Hit, i int, source bool) {
	t.Helper()
	if h.ID != docID(i) || h.Version != versionBase+int64(i) {
		t.Errorf("hit %s version %d, want %s version %d", h.ID, h.Version, docID(i), versionBase+int64(i))
	}
	if !source {
		if h.Source != nil {
			t.Errorf("hit %s: source %s not asked for", h.ID, h.Source)
		}
		return
	}
	var doc struct {
		ID         string `json:"id"`
		Title      string `json:"title"`
		WyeVersion int64  `json:"wye_version"`
	}
	if err := json.Unmarshal(h.Source, &doc); err != nil {
		t.Errorf("hit %s: source %q: %v", h.ID, h.Source, err)
		return
	}
	if doc.ID != docID(i) || doc.Title != fmt.Sprintf("Program %d", i) || doc.WyeVersion != versionBase+int64(i) {
		t.Errorf("hit %s: source %s, want doc %d as written", h.ID, h.Source, i)
	}
}

// requireNoOpenScan waits until index holds no search context: every point-in-time and
// scroll of the scans is released.
func requireNoOpenScan(t *testing.T, ctx context.Context, c *cluster.Client, index string) {
	t.Helper()
	eventually(t, 30*time.Second, func() error {
		var stats struct {
			All struct {
				Total struct {
					Search struct {
						OpenContexts *int `json:"open_contexts"`
					} `json:"search"`
				} `json:"total"`
			} `json:"_all"`
		}
		decode(t, do(t, ctx, c, "stats", esapi.IndicesStatsRequest{Index: []string{index}, Metric: []string{"search"}}), &stats)
		if n := stats.All.Total.Search.OpenContexts; n == nil || *n != 0 {
			return fmt.Errorf("index %s: open search contexts %v, want 0", index, n)
		}
		return nil
	})
}
