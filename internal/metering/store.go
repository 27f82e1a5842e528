package metering

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	_ "modernc.org/sqlite" // the pure-Go SQLite driver "sqlite": builds stay static
)

// DBPath is where the usage records live, relative to the server's data dir.
const DBPath = "metering/usage.db"

// schema is the database's layout. Times are Unix milliseconds; end_ms is NULL while the pod
// runs; last_seen_ms is the last time a running server knew the pod ran.
const schema = `
CREATE TABLE IF NOT EXISTS usage (
	uid          TEXT PRIMARY KEY,
	namespace    TEXT NOT NULL,
	pod          TEXT NOT NULL,
	owner_kind   TEXT NOT NULL,
	owner_name   TEXT NOT NULL,
	revision     TEXT NOT NULL,
	profile      TEXT NOT NULL,
	milli_cpu    INTEGER NOT NULL,
	memory_mib   INTEGER NOT NULL,
	storage_mib  INTEGER NOT NULL,
	start_ms     INTEGER NOT NULL,
	end_ms       INTEGER,
	last_seen_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS usage_end ON usage(end_ms);
CREATE TABLE IF NOT EXISTS settings (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
);`

// ratesKey is the settings row holding the rates in force on the server.
const ratesKey = "rates"

// opTimeout bounds every statement: a short transaction or none.
const opTimeout = 10 * time.Second

// Store is the usage database. The server's Meter is its one writer; gantry usage opens it
// read-only beside it (WAL lets readers run while it writes).
type Store struct {
	db *sql.DB
}

// ErrNoDatabase is the error of OpenStoreReadOnly when no server ever metered on the data dir.
var ErrNoDatabase = errors.New("no usage database")

// OpenStore opens (creating it and its directory) the database at path for writing.
func OpenStore(ctx context.Context, path string) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("usage database %s: %w", path, err)
	}
	s, err := open(ctx, path, false)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	if _, err := s.db.ExecContext(ctx, schema); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("usage database %s: creating tables: %w", path, err)
	}
	return s, nil
}

// OpenStoreReadOnly opens an existing database at path for queries.
func OpenStoreReadOnly(ctx context.Context, path string) (*Store, error) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", path, ErrNoDatabase)
	}
	return open(ctx, path, true)
}

func open(ctx context.Context, path string, readOnly bool) (*Store, error) {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "journal_mode(WAL)")
	// NORMAL in WAL mode: a committed transaction survives the process's death (kill -9);
	// only a power loss may take the last ones.
	q.Add("_pragma", "synchronous(NORMAL)")
	if readOnly {
		q.Add("_pragma", "query_only(1)")
	}
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("usage database %s: %w", path, err)
	}
	// One connection: one writer, and statements never wait on each other's locks.
	db.SetMaxOpenConns(1)
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("usage database %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Change is what Observe did to a record.
type Change struct {
	// Inserted: the record is new. Closed: this observation closed it (it was inserted
	// closed, or was open and now has its end). Ended: it was closed before.
	Inserted, Closed, Ended bool
	// LastSeen is the record's last_seen before this observation (zero when inserted).
	LastSeen time.Time
}

// Observe records what rec says of a pod, at now, in one transaction: a new pod is inserted;
// an open record gets its end when rec has one; a closed record never changes, so a pod is
// counted once, to the first end seen.
func (s *Store) Observe(ctx context.Context, rec Record, now time.Time) (Change, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Change{}, err
	}
	defer func() { _ = tx.Rollback() }() // after Commit it is a no-op
	var end sql.NullInt64
	var lastSeen int64
	err = tx.QueryRowContext(ctx, `SELECT end_ms, last_seen_ms FROM usage WHERE uid = ?`, rec.UID).Scan(&end, &lastSeen)
	var ch Change
	switch {
	case errors.Is(err, sql.ErrNoRows):
		ch = Change{Inserted: true, Closed: !rec.Open()}
		_, err = tx.ExecContext(ctx, `INSERT INTO usage (uid, namespace, pod, owner_kind, owner_name, revision, profile,
			milli_cpu, memory_mib, storage_mib, start_ms, end_ms, last_seen_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			rec.UID, rec.Namespace, rec.Pod, rec.OwnerKind, rec.OwnerName, rec.Revision, rec.Profile,
			rec.Size.MilliCPU, rec.Size.MemoryMiB, rec.Size.StorageMiB, rec.Start.UnixMilli(), nullTime(rec.End), now.UnixMilli())
	case err != nil:
	case end.Valid:
		return Change{Ended: true, LastSeen: time.UnixMilli(lastSeen)}, nil
	default:
		ch = Change{LastSeen: time.UnixMilli(lastSeen)}
		if !rec.Open() {
			ch.Closed = true
			_, err = tx.ExecContext(ctx, `UPDATE usage SET end_ms = ? WHERE uid = ? AND end_ms IS NULL`, rec.End.UnixMilli(), rec.UID)
		}
	}
	if err != nil {
		return Change{}, fmt.Errorf("recording pod %s/%s: %w", rec.Namespace, rec.Pod, err)
	}
	return ch, tx.Commit()
}

// CloseAt closes the open record of uid at end; it reports whether it was open.
func (s *Store) CloseAt(ctx context.Context, uid string, end time.Time) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	res, err := s.db.ExecContext(ctx, `UPDATE usage SET end_ms = ? WHERE uid = ? AND end_ms IS NULL`, end.UnixMilli(), uid)
	if err != nil {
		return false, fmt.Errorf("closing record %s: %w", uid, err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// Touch marks every open record as seen running at now.
func (s *Store) Touch(ctx context.Context, now time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	_, err := s.db.ExecContext(ctx, `UPDATE usage SET last_seen_ms = ? WHERE end_ms IS NULL`, now.UnixMilli())
	return err
}

// OpenRecord is a record of a pod that ran when a server last looked, with that time.
type OpenRecord struct {
	Record
	LastSeen time.Time
}

// OpenRecords are the records without an end.
func (s *Store) OpenRecords(ctx context.Context) ([]OpenRecord, error) {
	rows, err := s.query(ctx, `WHERE end_ms IS NULL`)
	if err != nil {
		return nil, err
	}
	return rows, nil
}

// Records are the records of pods that ran at or after since (open ones included), in
// namespace when it is not empty, oldest first.
func (s *Store) Records(ctx context.Context, since time.Time, namespace string) ([]Record, error) {
	where, args := `WHERE (end_ms IS NULL OR end_ms >= ?)`, []any{since.UnixMilli()}
	if namespace != "" {
		where += ` AND namespace = ?`
		args = append(args, namespace)
	}
	rows, err := s.query(ctx, where, args...)
	if err != nil {
		return nil, err
	}
	out := make([]Record, len(rows))
	for i, r := range rows {
		out[i] = r.Record
	}
	return out, nil
}

func (s *Store) query(ctx context.Context, where string, args ...any) ([]OpenRecord, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	rows, err := s.db.QueryContext(ctx, `SELECT uid, namespace, pod, owner_kind, owner_name, revision, profile,
		milli_cpu, memory_mib, storage_mib, start_ms, end_ms, last_seen_ms FROM usage `+where+` ORDER BY start_ms, uid`, args...)
	if err != nil {
		return nil, fmt.Errorf("reading usage records: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var out []OpenRecord
	for rows.Next() {
		var r OpenRecord
		var start, lastSeen int64
		var end sql.NullInt64
		if err := rows.Scan(&r.UID, &r.Namespace, &r.Pod, &r.OwnerKind, &r.OwnerName, &r.Revision, &r.Profile,
			&r.Size.MilliCPU, &r.Size.MemoryMiB, &r.Size.StorageMiB, &start, &end, &lastSeen); err != nil {
			return nil, fmt.Errorf("reading usage records: %w", err)
		}
		r.Start, r.LastSeen = time.UnixMilli(start), time.UnixMilli(lastSeen)
		if end.Valid {
			r.End = time.UnixMilli(end.Int64)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// SetRates stores the rates in force on the server, for gantry usage.
func (s *Store) SetRates(ctx context.Context, r Rates) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	_, err = s.db.ExecContext(ctx, `INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value`, ratesKey, string(b))
	return err
}

// Rates are the rates the server last had in force, or the defaults.
func (s *Store) Rates(ctx context.Context) (Rates, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	var v string
	err := s.db.QueryRowContext(ctx, `SELECT value FROM settings WHERE key = ?`, ratesKey).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return DefaultRates(), nil
	}
	if err != nil {
		return Rates{}, fmt.Errorf("reading rates: %w", err)
	}
	r := DefaultRates()
	if err := json.Unmarshal([]byte(v), &r); err != nil {
		return Rates{}, fmt.Errorf("reading rates: %w", err)
	}
	return r, nil
}

func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMilli()
}
