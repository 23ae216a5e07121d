"""Versioned schema migrations; PRAGMA user_version records how many have been applied.

Append new migrations to MIGRATIONS; never edit one that has shipped.
"""

MIGRATIONS: tuple[str, ...] = (
    # 1: the first schema
    """
    CREATE TABLE profiles (
        id          INTEGER PRIMARY KEY,
        name        TEXT NOT NULL UNIQUE COLLATE NOCASE,
        colour      TEXT NOT NULL,
        is_guest    INTEGER NOT NULL DEFAULT 0,
        created_at  TEXT NOT NULL,
        consent_at  TEXT
    );
    CREATE TABLE sessions (
        id          INTEGER PRIMARY KEY,
        uuid        TEXT NOT NULL UNIQUE,
        profile_id  INTEGER NOT NULL REFERENCES profiles(id) ON DELETE CASCADE,
        started_at  TEXT NOT NULL,
        ended_at    TEXT,
        end_reason  TEXT,
        mood_before TEXT,
        mood_after  TEXT
    );
    CREATE INDEX sessions_by_profile ON sessions(profile_id, started_at);
    CREATE TABLE mood_readings (
        id              INTEGER PRIMARY KEY,
        session_id      INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        phase           TEXT NOT NULL CHECK (phase IN ('before', 'after')),
        outcome         TEXT NOT NULL,
        label           TEXT,
        confidence      REAL NOT NULL,
        probs           TEXT NOT NULL,
        frames_used     INTEGER NOT NULL,
        corrected_label TEXT,
        created_at      TEXT NOT NULL
    );
    CREATE INDEX readings_by_session ON mood_readings(session_id);
    CREATE TABLE tracks (
        id          INTEGER PRIMARY KEY,
        path        TEXT NOT NULL UNIQUE,
        size        INTEGER NOT NULL,
        mtime       REAL NOT NULL,
        title       TEXT NOT NULL DEFAULT '',
        artist      TEXT NOT NULL DEFAULT '',
        album       TEXT,
        genre       TEXT,
        year        INTEGER,
        duration    REAL NOT NULL DEFAULT 0,
        tempo       REAL,
        quadrant    TEXT,
        probs       TEXT NOT NULL DEFAULT '{}',
        valence     REAL,
        arousal     REAL,
        category    TEXT,
        features    TEXT NOT NULL DEFAULT '{}',
        error       TEXT,
        analysed_at TEXT NOT NULL
    );
    CREATE INDEX tracks_by_category ON tracks(category);
    CREATE TABLE plays (
        id               INTEGER PRIMARY KEY,
        session_id       INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        track_id         INTEGER REFERENCES tracks(id) ON DELETE SET NULL,
        path             TEXT NOT NULL,
        title            TEXT NOT NULL,
        artist           TEXT NOT NULL,
        category         TEXT,
        started_at       TEXT NOT NULL,
        seconds_listened REAL NOT NULL DEFAULT 0,
        finished         INTEGER NOT NULL DEFAULT 0,
        error            TEXT
    );
    CREATE INDEX plays_by_session ON plays(session_id);
    CREATE TABLE ratings (
        id          INTEGER PRIMARY KEY,
        session_id  INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        play_id     INTEGER REFERENCES plays(id) ON DELETE SET NULL,
        score       INTEGER NOT NULL CHECK (score BETWEEN 0 AND 100),
        created_at  TEXT NOT NULL
    );
    CREATE INDEX ratings_by_session ON ratings(session_id);
    CREATE TABLE outbox (
        id          INTEGER PRIMARY KEY,
        event_id    TEXT NOT NULL UNIQUE,
        kind        TEXT NOT NULL,
        session_id  INTEGER REFERENCES sessions(id) ON DELETE SET NULL,
        payload     TEXT NOT NULL,
        created_at  TEXT NOT NULL,
        attempts    INTEGER NOT NULL DEFAULT 0,
        last_error  TEXT,
        sent_at     TEXT
    );
    CREATE INDEX outbox_pending ON outbox(sent_at, id);
    """,
    # 2: which analysis (features and mood model) produced each track's mood, so an update that
    # changes either re-analyses the library on the next scan
    """
    ALTER TABLE tracks ADD COLUMN analysis TEXT;
    """,
    # 3: the device's random secret that keys the profile pseudonyms of uploaded events (one row;
    # Store.open fills it in, from Python's `secrets`, when the database has none yet)
    """
    CREATE TABLE pseudonym_secret (
        id          INTEGER PRIMARY KEY CHECK (id = 1),
        secret      BLOB NOT NULL CHECK (length(secret) >= 32),
        created_at  TEXT NOT NULL
    );
    """,
    # 4: the payload the broker first acknowledged, sent again unchanged by `uplink --resend-since`
    # (re-stamped with a later device_id it would count twice), and when the uplink refused an event
    # that can never be sent (over the size limit): it stays here, out of the queue
    """
    ALTER TABLE outbox ADD COLUMN sent_payload TEXT;
    ALTER TABLE outbox ADD COLUMN refused_at TEXT;
    """,
    # 5: a play's ratings found by the play, for the recommender's "latest rating of each play" (a
    # scan of every rating per rating: 0.7 s at 6,000 ratings, which the guest profile reaches in a
    # year), and a track's plays by the track, for the songs whose last play failed
    """
    CREATE INDEX ratings_by_play ON ratings(play_id, id);
    CREATE INDEX plays_by_path ON plays(path, id);
    CREATE INDEX failed_plays ON plays(path) WHERE error IS NOT NULL;
    """,
    # 6: the highest profile id ever given, so that a forgotten person's id, and with it their
    # pseudonym in the cloud (events.profile_key), never goes to someone new: SQLite gives a new
    # row the highest id in the table plus one, the forgotten one's again when theirs was the
    # highest. Seeded with the highest id left: one forgotten before this migration is not known.
    """
    CREATE TABLE profile_ids_given (
        id          INTEGER PRIMARY KEY CHECK (id = 1),
        highest     INTEGER NOT NULL
    );
    INSERT INTO profile_ids_given (id, highest) SELECT 1, coalesce(max(id), 0) FROM profiles;
    """,
    # 7: when the broker first acknowledged an event (sent_at is cleared when `uplink --resend-since`
    # queues it again, and set anew when it goes), sent with the resend so that the ingest takes the
    # upload delay of the first delivery from it. Those sent so far: their sent_at is the only one known.
    """
    ALTER TABLE outbox ADD COLUMN first_sent_at TEXT;
    UPDATE outbox SET first_sent_at = sent_at WHERE sent_at IS NOT NULL;
    """,
    # 8: a track's file status-change time and a digest of its head and tail, so that a file
    # retagged in place by a tagger that keeps its size and mtime is analysed again (see
    # library.scan._retagged). Tracks catalogued before have neither: the next scan adopts them.
    """
    ALTER TABLE tracks ADD COLUMN ctime REAL;
    ALTER TABLE tracks ADD COLUMN fingerprint TEXT;
    """,
    # 9: the cloud keys (pseudonyms) of people forgotten here whose uploaded visits the operator
    # has yet to delete in the cloud, no name: once the profile is gone its keys can't be derived
    # again, and "Forget me" on the kiosk printed nothing (`moodtunes forget --pending`).
    """
    CREATE TABLE cloud_deletes (
        profile_key  TEXT PRIMARY KEY,
        forgotten_at TEXT NOT NULL
    );
    """,
    # 10: a visit recorded before a time server set the clock (a Pi has no clock of its own): the
    # boot and the wall clock's offset from the boot time its times were read with, so that once the
    # clock is set in the same boot they can be moved by the step (Store.settle_visit_clock). NULL:
    # the clock was set, or that couldn't be told. Indexed: the uplink looks for them at every turn.
    """
    ALTER TABLE sessions ADD COLUMN clock_boot_id TEXT;
    ALTER TABLE sessions ADD COLUMN clock_offset REAL;
    CREATE INDEX sessions_on_unset_clock ON sessions(id) WHERE clock_boot_id IS NOT NULL;
    """,
    # 11: outbox ids never given again from here on (AUTOINCREMENT): the uplink marks an event sent by its id once
    # the broker acknowledges it, and when `moodtunes forget` had deleted it meanwhile, the kiosk's
    # next visit took the same id and was marked sent, never to go, with the forgotten visit's
    # payload to send again at a resend. And the events found by their visit (forget's deletes, a
    # visit's delete setting theirs NULL) by an index: those scanned the whole outbox with the
    # database locked, a second's freeze of the kiosk at 35,000 visits. A row pointing at a visit
    # gone (a hand edit: the sqlite3 shell enforces no foreign keys) is copied pointing at none.
    """
    CREATE TABLE outbox_new (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id      TEXT NOT NULL UNIQUE,
        kind          TEXT NOT NULL,
        session_id    INTEGER REFERENCES sessions(id) ON DELETE SET NULL,
        payload       TEXT NOT NULL,
        created_at    TEXT NOT NULL,
        attempts      INTEGER NOT NULL DEFAULT 0,
        last_error    TEXT,
        sent_at       TEXT,
        sent_payload  TEXT,
        refused_at    TEXT,
        first_sent_at TEXT
    );
    INSERT INTO outbox_new SELECT id, event_id, kind,
        CASE WHEN session_id IN (SELECT id FROM sessions) THEN session_id END,
        payload, created_at, attempts, last_error, sent_at, sent_payload, refused_at, first_sent_at FROM outbox;
    DROP TABLE outbox;
    ALTER TABLE outbox_new RENAME TO outbox;
    CREATE INDEX outbox_pending ON outbox(sent_at, id);
    CREATE INDEX outbox_by_session ON outbox(session_id);
    """,
    # 12: which wording of the consent notice a person agreed to (store.CONSENT_NOTICE), so that a
    # change of what it says is agreed to again; those who agreed so far saw the first.
    """
    ALTER TABLE profiles ADD COLUMN consent_notice INTEGER;
    UPDATE profiles SET consent_notice = 1 WHERE consent_at IS NOT NULL;
    """,
    # 13: a random token of each new profile, in its pseudonym (events.profile_key): a database
    # restored from a backup counts profile ids from where the backup was, and one copied to a
    # second kiosk counts on from the same id on both, so two people got one pseudonym and a
    # forget's cloud deletes took the other's visits. NULL: a profile made before, keyed as it was.
    """
    ALTER TABLE profiles ADD COLUMN pseudonym_token TEXT;
    """,
    # 14: the forgotten people's cloud keys numbered in the order they were kept, never a number
    # given again (AUTOINCREMENT): `forget --pending --done N` clears those listed up to N. It
    # cleared by the time they were forgotten, by the device's clock: a Pi without a clock of its
    # own, restarted offline, forgot someone "days earlier" and the list printed before cleared
    # them too, unprinted, for good. And when the uplink first handed each event to the broker
    # (``published_at``): an event the broker took may be in the cloud whatever is recorded after
    # (the uplink killed before it marked the event sent, a power cut taking that back, no PUBACK
    # in time), so `forget` keeps its key even with uploading off now. Events tried before are
    # counted as handed over: the deletes are a precaution that costs nothing where there is none.
    """
    CREATE TABLE cloud_deletes_new (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        profile_key  TEXT NOT NULL UNIQUE,
        forgotten_at TEXT NOT NULL
    );
    INSERT INTO cloud_deletes_new (profile_key, forgotten_at)
        SELECT profile_key, forgotten_at FROM cloud_deletes ORDER BY forgotten_at, profile_key;
    DROP TABLE cloud_deletes;
    ALTER TABLE cloud_deletes_new RENAME TO cloud_deletes;
    ALTER TABLE outbox ADD COLUMN published_at TEXT;
    UPDATE outbox SET published_at = coalesce(first_sent_at, sent_at, created_at)
        WHERE attempts > 0 OR sent_at IS NOT NULL OR sent_payload IS NOT NULL;
    """,
    # 15 (profile PINs): a profile's optional 4-digit PIN, asked before its visit starts, as its
    # salted scrypt hash only (store.hash_pin; NULL: no PIN), and the wrong tries at it in a row,
    # kept here so that restarting the kiosk doesn't give them back.
    """
    ALTER TABLE profiles ADD COLUMN pin_hash TEXT;
    ALTER TABLE profiles ADD COLUMN pin_failures INTEGER NOT NULL DEFAULT 0;
    """,
    # 16: "Larger text", chosen on the kiosk's welcome screen for the kiosk (one row; none: never
    # chosen there, and kiosk.larger_text in the config says), so that a restart keeps it.
    """
    CREATE TABLE text_size (
        id          INTEGER PRIMARY KEY CHECK (id = 1),
        larger      INTEGER NOT NULL CHECK (larger IN (0, 1)),
        chosen_at   TEXT NOT NULL
    );
    """,
    # 17: a track's plays found by the track, for the ON DELETE SET NULL of plays.track_id when the
    # library scan prunes a track: it read every play of every visit for each track deleted, 66 ms
    # a track after five years of a busy kiosk (91,671 plays, bench/years.py), 3.3 s of the database
    # locked for each batch of 50 (Store.delete_tracks), the kiosk's writes waiting; 1.6 ms with it.
    """
    CREATE INDEX plays_by_track ON plays(track_id);
    """,
    # 18: the device_id an outbox event was recorded under and the one the broker acknowledged it
    # under, in columns of their own: they were read from its two payloads, which the uplink now
    # drops once the event was acknowledged more than mqtt.keep_sent_days ago (Store.drop_sent_payloads:
    # the outbox kept every visit sent, twice, 186 MB after five years of a busy kiosk,
    # bench/years.py), while `moodtunes forget` needs the ids for visits of any age. NULL, as
    # before, where a payload can't be read, or nothing of what was acknowledged was kept (sent
    # before migration 4). A dropped payload is '' (the column is NOT NULL: rebuilding the table to
    # allow NULL would copy the whole outbox at the upgrade); the events whose payloads are kept,
    # sent or not, are indexed by when they were acknowledged, so that the daily drop reads only those.
    """
    ALTER TABLE outbox ADD COLUMN recorded_as TEXT;
    ALTER TABLE outbox ADD COLUMN acknowledged_as TEXT;
    UPDATE outbox SET
        recorded_as = CASE WHEN json_valid(payload) THEN json_extract(payload, '$.device_id') END,
        acknowledged_as = CASE WHEN json_valid(sent_payload) THEN json_extract(sent_payload, '$.device_id') END;
    CREATE INDEX outbox_payloads_kept ON outbox(sent_at) WHERE payload != '';
    """,
    # 19: an event whose payload was dropped ('') is never waiting to be sent: queued again, it
    # would go to the broker as an empty message (the uplink sends what it can't read as it is),
    # and, neither sent nor holding what was acknowledged, `forget` would no longer list it as in
    # the cloud. Store.mark_unsent_since skips such events, and the drop takes only acknowledged
    # ones; the trigger holds for whatever else writes (a re-queue that doesn't check, as the one
    # before migration 18 took a dropped event's NULL sent_payload for this device's, in a process
    # still running over the upgrade; a hand edit): the row is left as it was (IGNORE), and the
    # statement goes on with the others.
    """
    CREATE TRIGGER outbox_waiting_keeps_its_payload BEFORE UPDATE OF payload, sent_at ON outbox
    WHEN NEW.payload = '' AND NEW.sent_at IS NULL
    BEGIN SELECT RAISE(IGNORE); END;
    """,
    # 20: a profile's visits indexed by id (the rowid an index on profile_id alone keeps in order)
    # in place of by start time, which nothing reads: the song list's reads of a profile's newest
    # ratings, early skips and recent visits (Store.track_feedback, early_skips, recent_songs) walk
    # them newest first and stop at their window; they read every visit of the profile and sorted
    # them all, the shared guest profile's 18,333 of 55,000 visits 61, 234 and 25 ms here.
    """
    DROP INDEX sessions_by_profile;
    CREATE INDEX sessions_by_profile ON sessions(profile_id);
    """,
    # 21: the failed plays indexed by when they started, in place of by path: the songs whose last
    # play failed within UNPLAYABLE_FOR (Store.unplayable_paths, at each song list) are read from
    # that day's failed plays; it walked every failed play ever, by path, and looked up each one's
    # latest play: 44 ms at 20,869 failed plays of five years (bench/years.py), 0.1 ms now.
    """
    DROP INDEX failed_plays;
    CREATE INDEX failed_plays_by_time ON plays(started_at) WHERE error IS NOT NULL;
    """,
    # 22: the order the library scan wrote tracks in (catalogued, or analysed again), each write
    # numbered after every one before it, for the songs screen's looks for the songs sorted since
    # its last (Store.tracks' ``sorted_after``): they went by analysed_at, the wall clock's, and a
    # clock set back during a visit (a time sync correcting a Pi that started with its clock ahead)
    # stamped the songs sorted next before the last look, never found. NULL: written before.
    """
    ALTER TABLE tracks ADD COLUMN sorted_seq INTEGER;
    CREATE INDEX tracks_by_sorted_seq ON tracks(sorted_seq);
    """,
    # 23: a profile's ended visits indexed apart: the report's check that the history it kept is
    # whole (Store.ended_visit_count, report.kept_history) counts them in the index alone; it looked
    # up each of the profile's visits in the table for its end, 5.6 ms of the report's frame for a
    # visitor with 5,000 of 52,409 visits (bench/frames.py), on a Pi several times that.
    """
    CREATE INDEX sessions_ended_by_profile ON sessions(profile_id, ended_at) WHERE ended_at IS NOT NULL;
    """,
    # 24: the highest sorted_seq ever given, as profile_ids_given keeps the profiles' ids: numbered
    # by the highest in tracks plus one, the next write after a prune of the latest (a scan prunes
    # before it sorts) took its number again, and a top-up that had read up to it missed that song.
    """
    CREATE TABLE sorted_seqs_given (
        id          INTEGER PRIMARY KEY CHECK (id = 1),
        highest     INTEGER NOT NULL
    );
    INSERT INTO sorted_seqs_given (id, highest) SELECT 1, coalesce(max(sorted_seq), 0) FROM tracks;
    """,
)
