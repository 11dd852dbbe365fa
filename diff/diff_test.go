package diff

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestPathsNamesEveryDifferingPathAndOnlyThose(t *testing.T) {
	a := `{"id":1,"title":"a","n":1.0,"channel":{"id":2,"name":"x"},"episodes":[{"id":1},{"id":2}],"wye_version":5}`
	b := `{"wye_version":9,"episodes":[{"id":1},{"id":3},{"id":4}],"channel":{"name":"y","id":2},"n":1,"title":"a","id":1}`
	d, err := Paths([]byte(a), []byte(b), "wye_version")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"channel.name", "episodes[1].id", "episodes[2]"}
	if !slices.Equal(d.Paths, want) || len(d.Empty) != 0 {
		t.Errorf("Paths = %q, empty %q; want %q and none", d.Paths, d.Empty, want)
	}
}

func TestEmptyArrayNullAndMissingFieldAreTheirOwnClass(t *testing.T) {
	cases := []struct {
		name, a, b string
		class      Class
		empty      []string
	}{
		{"[] vs null", `{"id":1,"tags":[]}`, `{"id":1,"tags":null}`, EmptyNull, []string{"tags"}},
		{"[] vs absent", `{"id":1,"tags":[]}`, `{"id":1}`, EmptyNull, []string{"tags"}},
		{"null vs absent, nested", `{"c":{"n":null}}`, `{"c":{}}`, EmptyNull, []string{"c.n"}},
		{"[] vs null beside a real change", `{"t":"a","tags":[]}`, `{"t":"b","tags":null}`, Different, []string{"tags"}},
		{"[] vs [x]", `{"tags":[]}`, `{"tags":[1]}`, Different, nil},
		{"both empty alike", `{"tags":[],"x":null}`, `{"x":null,"tags":[]}`, Equal, nil},
	}
	for _, c := range cases {
		r := Copy{Found: true, Version: 7, Source: []byte(c.a)}
		o := Copy{Found: true, Version: 7, Source: []byte(c.b)}
		got, d := Classify(r, o, "wye_version")
		if got != c.class || !slices.Equal(d.Empty, c.empty) {
			t.Errorf("%s: class %v empty %q, want %v %q", c.name, got, d.Empty, c.class, c.empty)
		}
	}
}

func TestSameContentAtOtherVersionsIsEqualAndOtherContentIsLagOrCorruption(t *testing.T) {
	doc := func(title string, v int) []byte {
		return []byte(fmt.Sprintf(`{"id":1,"title":%q,"wye_version":%d}`, title, v))
	}
	cases := []struct {
		name string
		r, o Copy
		want Class
	}{
		{"same content, versions apart (a resync rewrote one)", Copy{true, 5, doc("a", 5)}, Copy{true, 9, doc("a", 9)}, Equal},
		{"other content, same version", Copy{true, 5, doc("a", 5)}, Copy{true, 5, doc("b", 5)}, Different},
		{"other content, lower version", Copy{true, 9, doc("a", 9)}, Copy{true, 5, doc("b", 5)}, Behind},
		{"other content, higher version", Copy{true, 5, doc("a", 5)}, Copy{true, 9, doc("b", 9)}, Ahead},
		{"missing", Copy{true, 5, doc("a", 5)}, Copy{}, Missing},
		{"extra", Copy{}, Copy{true, 5, doc("a", 5)}, Extra},
		{"against MySQL (no version)", Copy{true, 0, doc("a", 0)}, Copy{true, 5, doc("b", 5)}, Different},
		{"no sources, same version", Copy{true, 5, nil}, Copy{true, 5, nil}, Equal},
	}
	for _, c := range cases {
		if got, _ := Classify(c.r, c.o, "wye_version"); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

func doc(id int, title string, v int64) string {
	return fmt.Sprintf(`{"id":%d,"title":%q,"tags":[],"wye_version":%d}`, id, title, v)
}

// world is a master and two slaves holding the same n documents.
func world(n int) (master, s1, s2 *fakeCluster) {
	master, s1, s2 = newCluster(), newCluster(), newCluster()
	for i := 1; i <= n; i++ {
		for _, c := range []*fakeCluster{master, s1, s2} {
			c.put(strconv.Itoa(i), int64(100+i), doc(i, "t"+strconv.Itoa(i), int64(100+i)))
		}
	}
	return master, s1, s2
}

func diffOf(t *testing.T, content Content, clusters ...*fakeCluster) (*Report, []string) {
	t.Helper()
	report := filepath.Join(t.TempDir(), "diff.json")
	var cs []Cluster
	for i, c := range clusters {
		cs = append(cs, Cluster{Name: []string{"es7", "es8", "os2"}[i], Reader: c})
	}
	rep, err := Docs(t.Context(), Options{Model: model(), Clusters: cs, Content: content, ScanPage: 7,
		Recheck: 5 * time.Millisecond, Report: report})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(rep.IDsFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for s := bufio.NewScanner(z); s.Scan(); {
		lines = append(lines, s.Text())
	}
	slices.Sort(lines)
	return rep, lines
}

func tally(t *testing.T, rep *Report, cluster string) *Tally {
	t.Helper()
	for _, x := range rep.Entities[0].Pairs {
		if x.Cluster == cluster {
			return x
		}
	}
	t.Fatalf("no pair for %s", cluster)
	return nil
}

func TestDocsFindsExactlyTheFourHandMadeDifferencesInTheirClasses(t *testing.T) {
	for _, content := range []Content{{All: true}, {Sample: 5}, {}} {
		t.Run(content.String(), func(t *testing.T) {
			m, s1, s2 := world(50)
			delete(s2.docs, "3")                                                         // missing
			s2.put("999", 1, doc(999, "orphan", 1))                                      // extra
			s2.put("10", 110, `{"id":10,"title":"altered","tags":[],"wye_version":110}`) // same version, other title
			s2.put("20", 120, `{"id":20,"title":"t20","tags":null,"wye_version":120}`)   // [] became null
			rep, lines := diffOf(t, content, m, s1, s2)
			if x := tally(t, rep, "es8"); x.Differences() != 0 || x.Equal != 50 {
				t.Errorf("es8: %+v, want 50 equal", x)
			}
			x := tally(t, rep, "os2")
			want := []string{"empty_null\tos2\tprogram\t20\ttags", "extra\tos2\tprogram\t999\t", "missing\tos2\tprogram\t3\t",
				"different\tos2\tprogram\t10\ttitle"}
			if !content.All {
				// Without the content of every document, corruption at the same version is only
				// found in the sample.
				want = slices.DeleteFunc(want, func(l string) bool {
					id := strings.Split(l, "\t")[3]
					return (id == "10" || id == "20") && !(content.Sample > 0 && hash(id)%uint64(50/content.Sample) == 0)
				})
			}
			slices.Sort(want)
			if !slices.Equal(lines, want) {
				t.Errorf("id list %q, want %q", lines, want)
			}
			if rep.Status != StatusDifferent || x.Missing != 1 || x.Extra != 1 {
				t.Errorf("status %s, os2 %+v", rep.Status, x)
			}
			if content.All && (x.Different != 1 || x.EmptyNull != 1 || rep.Fetched < 150) {
				t.Errorf("content all: os2 %+v, fetched %d", x, rep.Fetched)
			}
			if !strings.Contains(rep.Summary(), "documents fetched in full") {
				t.Errorf("summary:\n%s", rep.Summary())
			}
		})
	}
}

func TestLagIsReadAgainAndNotReportedOnceTheStreamDeliversIt(t *testing.T) {
	m, s1, _ := world(30)
	// The stream wrote 5 and 6 to the master and deleted 7 there; the slave gets them after its
	// first reads.
	m.put("5", 500, doc(5, "new", 500))
	m.put("6", 600, doc(6, "new", 600))
	m.put("31", 700, doc(31, "new", 700))
	delete(m.docs, "7")
	s1.onGet = func(n int, c *fakeCluster) {
		if n == 6 { // after the pages of the reference
			c.put("5", 500, doc(5, "new", 500))
			c.put("6", 600, doc(6, "new", 600))
			c.put("31", 700, doc(31, "new", 700))
			c.mu.Lock()
			delete(c.docs, "7")
			c.mu.Unlock()
		}
	}
	rep, lines := diffOf(t, Content{All: true}, m, s1)
	x := tally(t, rep, "es8")
	if rep.Status != StatusEqual || len(lines) != 0 || x.Rechecked == 0 {
		t.Errorf("status %s, %+v, ids %q; want equal after rechecks", rep.Status, x, lines)
	}
}

func TestLagThatStaysIsReportedBehind(t *testing.T) {
	m, s1, _ := world(10)
	m.put("5", 500, doc(5, "new", 500))
	rep, lines := diffOf(t, Content{}, m, s1)
	x := tally(t, rep, "es8")
	// It did not move between two reads: one recheck, not Rechecks.
	if x.Behind != 1 || x.Rechecked != 1 || !slices.Equal(lines, []string{"behind\tes8\tprogram\t5\tes7:500 es8:105 title"}) {
		t.Errorf("%+v, ids %q", x, lines)
	}
}

func TestAnUnreachableClusterFailsTheDiffAndTheOthersAreCompared(t *testing.T) {
	m, s1, s2 := world(10)
	s2.down = true
	rep, _ := diffOf(t, Content{All: true}, m, s1, s2)
	if rep.Status != StatusFailed || tally(t, rep, "os2").Error == "" || tally(t, rep, "es8").Equal != 10 {
		t.Errorf("status %s, problems %q, pairs %+v %+v", rep.Status, rep.Problems, tally(t, rep, "es8"), tally(t, rep, "os2"))
	}
}

func TestLagThatMovesIsReadAgainUntilTheStreamCatchesUp(t *testing.T) {
	m, s1, _ := world(10)
	m.put("5", 900, doc(5, "third", 900))
	// The slave's copy moves at each read (the stream delivers the writes one after the other),
	// and equals the master's at the third read of the recheck.
	versions := map[int]int64{3: 500, 4: 700, 5: 900} // reads 1 and 2: the two pages
	s1.onGet = func(n int, c *fakeCluster) {
		if v, ok := versions[n]; ok {
			title := map[int64]string{500: "first", 700: "second", 900: "third"}[v]
			c.put("5", v, doc(5, title, v))
		}
	}
	rep, lines := diffOf(t, Content{All: true}, m, s1)
	x := tally(t, rep, "es8")
	if rep.Status != StatusEqual || len(lines) != 0 || x.Rechecked < 2 {
		t.Errorf("status %s, %+v, ids %q; want equal after rechecks", rep.Status, x, lines)
	}
}
