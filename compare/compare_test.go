package compare

import "testing"

func TestSameIgnoresOnlyTheTopLevelVersion(t *testing.T) {
	cases := []struct {
		name string
		a, b string
		same bool
	}{
		{"versions differ", `{"id":1,"title":"a","version":10}`, `{"id":1,"title":"a","version":99}`, true},
		{"version first", `{"version":1,"id":1}`, `{"version":22,"id":1}`, true},
		{"version only member", `{"version":1}`, `{"version":22}`, true},
		{"one lacks the version", `{"id":1,"version":5}`, `{"id":1}`, true},
		{"content differs", `{"id":1,"title":"a","version":10}`, `{"id":1,"title":"b","version":10}`, false},
		{"nested version counts", `{"a":{"version":1},"version":3}`, `{"a":{"version":2},"version":3}`, false},
		{"member order", `{"b":2,"a":1,"version":1}`, `{"a":1,"b":2,"version":7}`, true},
		{"number forms", `{"n":1.0,"m":1e2,"version":1}`, `{"n":1,"m":100,"version":2}`, true},
		{"big integers exact", `{"n":18446744073709551615}`, `{"n":18446744073709551614}`, false},
		{"array order matters", `{"a":[1,2]}`, `{"a":[2,1]}`, false},
		{"empty array is not null", `{"a":[]}`, `{"a":null}`, false},
		{"null is not missing", `{"a":null,"b":1}`, `{"b":1}`, false},
		{"escaped quote in a string", `{"t":"x\"version\":1","version":1}`, `{"t":"x\"version\":1","version":2}`, true},
		{"white space", `{ "id" : 1 , "version" : 1 }`, `{"id":1,"version":2}`, true},
		{"not JSON", `{"id":`, `{"id":1}`, false},
	}
	for _, c := range cases {
		if got := Same([]byte(c.a), []byte(c.b), "version"); got != c.same {
			t.Errorf("%s: Same(%s, %s) = %v, want %v", c.name, c.a, c.b, got, c.same)
		}
		if got := Same([]byte(c.b), []byte(c.a), "version"); got != c.same {
			t.Errorf("%s (swapped): Same = %v, want %v", c.name, got, c.same)
		}
	}
}

func TestDocNeverCallsANewerStreamWriteDifferent(t *testing.T) {
	ours := []byte(`{"id":1,"t":"old","version":100}`)
	if c := Doc(ours, 100, true, []byte(`{"id":1,"t":"new","version":150}`), 150, "version"); c != Newer {
		t.Errorf("newer stream write: %v, want newer", c)
	}
	if c := Doc(ours, 100, true, []byte(`{"id":1,"t":"stale","version":50}`), 50, "version"); c != Different {
		t.Errorf("older different copy: %v, want different", c)
	}
	if c := Doc(ours, 100, true, []byte(`{"id":1,"t":"old","version":50}`), 50, "version"); c != Equal {
		t.Errorf("older equal copy: %v, want equal (nothing to write)", c)
	}
	if c := Doc(ours, 100, false, nil, 0, "version"); c != Missing {
		t.Errorf("absent: %v, want missing", c)
	}
}

func TestFastPathAgreesWithCanonical(t *testing.T) {
	docs := []string{`{"a":1,"version":5,"z":[1,{"version":2}]}`, `{"version":5,"a":1}`, `{"a":1}`, `{}`, `{"version":5}`}
	for _, d := range docs {
		before, after, ok := without([]byte(d), "version")
		if !ok {
			t.Fatalf("without(%s) failed", d)
		}
		got, err := Canonical(append(append([]byte{}, before...), after...), "")
		if err != nil {
			t.Fatalf("without(%s) = %s%s: not JSON: %v", d, before, after, err)
		}
		want, _ := Canonical([]byte(d), "version")
		if string(got) != string(want) {
			t.Errorf("without(%s) = %s, canonical says %s", d, got, want)
		}
	}
}

func BenchmarkSameEqualDocuments(b *testing.B) {
	a := []byte(`{"channel":{"id":3,"name":"Arte"},"episodes":[{"id":1,"title":"Pilot"},{"id":2,"title":"Two"}],"id":42,"title":"A program title","version":281479271677952}`)
	c := []byte(`{"channel":{"id":3,"name":"Arte"},"episodes":[{"id":1,"title":"Pilot"},{"id":2,"title":"Two"}],"id":42,"title":"A program title","version":281479271699999}`)
	for b.Loop() {
		if !Same(a, c, "version") {
			b.Fatal("not same")
		}
	}
}
