package diff

import (
	"github.com/wyehq/wye/compare"
)

// Class is how the compared copy of a document stands against the reference's.
type Class int

const (
	Equal     Class = iota // same content (the version field aside), whatever the versions
	Missing                // the reference holds the document, the compared cluster does not
	Extra                  // the compared cluster holds a document the reference does not
	Different              // other content at the same version (corruption), or against MySQL
	EmptyNull              // equal except paths empty in different ways: [] / null / absent
	Behind                 // other content at a lower version on the compared cluster: lag
	Ahead                  // other content at a higher version on the compared cluster: the reference lags
)

var classNames = [...]string{Equal: "equal", Missing: "missing", Extra: "extra", Different: "different",
	EmptyNull: "empty_null", Behind: "behind", Ahead: "ahead"}

func (c Class) String() string { return classNames[c] }

// lag says a class may be a write on its way: it is checked again before it is reported.
func (c Class) lag() bool { return c == Missing || c == Extra || c == Behind || c == Ahead }

// Copy is one side's copy of a document.
type Copy struct {
	Found   bool
	Version int64  // 0: the side has no versions (MySQL)
	Source  []byte // nil: not read
}

// Classify compares the compared copy o with the reference's r. Content decides: copies with
// the same content are Equal whatever their versions (a resync writes a cluster only where its
// copy differs, so equal copies may carry different versions). Copies whose content differs
// only by empty paths are EmptyNull. Other content at the same version is Different (two
// writes of one version never differ: the copy was altered); at different versions it is lag
// (Behind or Ahead), which the caller checks again. A side without versions (r.Version 0, MySQL)
// makes every content difference Different. Without both sources, equal versions are Equal
// (the content was not asked for) and different ones lag. The Delta lists the paths when both
// sources were compared.
func Classify(r, o Copy, versionField string) (Class, Delta) {
	switch {
	case !r.Found && !o.Found:
		return Equal, Delta{}
	case !o.Found:
		return Missing, Delta{}
	case !r.Found:
		return Extra, Delta{}
	}
	if r.Source == nil || o.Source == nil {
		return byVersion(r, o), Delta{}
	}
	if compare.Same(r.Source, o.Source, versionField) {
		return Equal, Delta{}
	}
	d, err := Paths(r.Source, o.Source, versionField)
	if err != nil || d.Same() {
		// Not JSON, or a difference Paths does not see: the whole document differs.
		d = Delta{Paths: []string{"."}}
	}
	if len(d.Paths) == 0 {
		return EmptyNull, d
	}
	if r.Version == 0 || r.Version == o.Version {
		return Different, d
	}
	return byVersion(r, o), d
}

func byVersion(r, o Copy) Class {
	switch {
	case r.Version == 0 || o.Version == r.Version:
		return Equal
	case o.Version < r.Version:
		return Behind
	default:
		return Ahead
	}
}
