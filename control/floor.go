package control

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/wyehq/wye/cdc"
)

// Floor returns the control schema's epoch floor (cdc.EpochFloor): the start point of highest
// version that any reader of this schema saved. ok is false when no reader ever saved one (a
// new or recreated control schema).
func (c *CDC) Floor(ctx context.Context) (cdc.Checkpoint, bool, error) {
	var f cdc.Checkpoint
	var pos uint64
	err := c.db.QueryRowContext(ctx, `SELECT epoch, server_uuid, file, pos, name FROM cdc_epoch_floor WHERE id = 1`).
		Scan(&f.Epoch, &f.SourceID, &f.Pos.File, &pos, &f.Name)
	if errors.Is(err, sql.ErrNoRows) {
		return cdc.Checkpoint{}, false, nil
	}
	if err != nil {
		return cdc.Checkpoint{}, false, fmt.Errorf("read epoch floor: %w", err)
	}
	f.Pos.Pos = uint32(pos)
	return f, true, nil
}

// raiseFloor raises the epoch floor to cp within tx, the transaction that saves cp: the floor
// becomes cp when cp's version is above the floor's, and never moves down. Invariant
// (docs/architecture.md, invariant 2): the floor's version is at least the version of every
// checkpoint, and so of every start point a reader published from, of this control schema;
// it lives in its own row, so deleting a checkpoint or renaming a reader leaves it in place.
//
// The row is updated column by column left to right, each assignment seeing the ones before:
// version goes last, so every IF compares with the old version.
func raiseFloor(ctx context.Context, tx *sql.Tx, cp cdc.Checkpoint) error {
	v, err := cdc.VersionAt(cp.Epoch, cp.Pos.File, cp.Pos.Pos)
	if err != nil {
		return fmt.Errorf("raise epoch floor: %w", err)
	}
	_, err = tx.ExecContext(ctx, `
INSERT INTO cdc_epoch_floor (id, version, epoch, server_uuid, file, pos, name, updated_at)
VALUES (1, ?, ?, ?, ?, ?, ?, NOW(6))
ON DUPLICATE KEY UPDATE
  epoch       = IF(VALUES(version) > version, VALUES(epoch), epoch),
  server_uuid = IF(VALUES(version) > version, VALUES(server_uuid), server_uuid),
  file        = IF(VALUES(version) > version, VALUES(file), file),
  pos         = IF(VALUES(version) > version, VALUES(pos), pos),
  name        = IF(VALUES(version) > version, VALUES(name), name),
  updated_at  = IF(VALUES(version) > version, VALUES(updated_at), updated_at),
  version     = GREATEST(version, VALUES(version))`,
		uint64(v), cp.Epoch, cp.SourceID, cp.Pos.File, cp.Pos.Pos, cp.Name)
	if err != nil {
		return fmt.Errorf("raise epoch floor: %w", err)
	}
	return nil
}
