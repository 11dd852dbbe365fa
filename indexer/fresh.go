package indexer

// Read fresh, verified (docs/architecture.md, invariant 4). The binlog can show a change before
// a reader sees it: semi-sync AFTER_SYNC acknowledges the replica before the commit is
// visible, an XA transaction is in the binlog at XA PREPARE. A document built from such a read
// holds the old row but would be written with the change's version, and a later redelivery
// would be refused as stale. So the root row each change is answered with is compared with the
// change: when the read may be older, the entity goes to a short retry (to every cluster)
// instead of being written now.

// ReadBehindReason is the reason of the retry of an entity whose read was older than its change.
const ReadBehindReason = "the read did not show the change yet (snapshot behind the binlog); retried"

// expect records c as the latest change of its root row in the batch, unless it moved the row
// to another key (then there is no one row to compare with).
func (r *resolver) expect(n *node, c *Change) {
	key := c.After.Get(n.col())
	switch {
	case c.After.IsNil():
		key = c.Before.Get(n.col())
	case !c.Before.IsNil() && c.Before.Get(n.col()).match() != key.match():
		return
	}
	ref := Ref{Entity: n.entity.Name, Key: key.match()}
	if old := r.latest[ref]; old == nil || c.Version >= old.Version {
		r.latest[ref] = c
	}
}

// behind reports whether row, the root row read for a document whose latest change is c (nil:
// no row), may be older than c, so that the document must not be written with c's version now:
//   - an insert whose row is not there (or was deleted since: a retry is harmless then);
//   - a delete whose row is still there (or was inserted again since: the same);
//   - an update whose row still holds the before value of every column it changed that the
//     entity reads. A row that holds neither image is newer (a later change), or encodes a
//     value differently from the event; it is written, as without this check.
func (n *node) behind(c *Change, row Row) bool {
	switch c.Op {
	case "insert":
		return row.IsNil()
	case "delete":
		return !row.IsNil()
	}
	if row.IsNil() {
		return false // deleted since the update: newer
	}
	changed := false
	// still reports whether col, which the update changed or not, leaves the row possibly older;
	// i is where col is in the rows of the same columns (near).
	still := func(col string, i int, before Value) bool {
		if before == c.After.near(col, i) {
			return true
		}
		changed = true
		return row.near(col, i) == before
	}
	if n.read == nil { // every column: those of the image, without collecting them first
		for i, before := range c.Before.vals {
			if !still(c.Before.cols.names[i], i, before) {
				return false
			}
		}
		return changed
	}
	for i, col := range n.read { // the row read holds n.read in this order
		if !still(col, i, c.Before.Get(col)) {
			return false
		}
	}
	return changed
}
