package reason

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCutDropsTheQuotedValueOfAMapperError(t *testing.T) {
	msg := "failed to parse field [year] of type [long] in document with id '7'. Preview of field's value: 'secret-row-data'"
	got := Cut("mapper_parsing_exception", msg)
	if strings.Contains(got, "secret-row-data") {
		t.Fatalf("reason keeps the row's value: %q", got)
	}
	want := "mapper_parsing_exception: failed to parse field [year] of type [long] in document with id '7'. Preview of field's value: <cut>"
	if got != want {
		t.Fatalf("Cut = %q, want %q", got, want)
	}
}

func TestCutKeepsAnAlreadyTypedMessageOnce(t *testing.T) {
	if got := Cut("source", "source: Error 1054 (42S22): Unknown column 'title' in 'field list'"); got != "source: Error 1054 (42S22): Unknown column 'title' in 'field list'" {
		t.Fatalf("Cut = %q", got)
	}
}

func TestCutBoundsALongReasonOnACharacterBoundary(t *testing.T) {
	got := Cut("", strings.Repeat("é", 400))
	if len(got) > Max {
		t.Fatalf("len = %d, want at most %d", len(got), Max)
	}
	if !utf8.ValidString(got) || !strings.HasSuffix(got, "…") {
		t.Fatalf("cut mid-character or without a mark: %q", got[len(got)-8:])
	}
}
