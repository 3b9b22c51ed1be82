-- The operator console's jobs (README, "Console"): "redeliver every dead event since T",
-- kept so that its page can show how far it got. A job names the events it made due;
-- their progress (delivered, dead again, still pending) is read live from the outbox,
-- never copied here.
CREATE TABLE console_jobs (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind        text        NOT NULL
                            CONSTRAINT console_jobs_kind_known CHECK (kind IN ('replay_dead_events')),
    started_at  timestamptz NOT NULL DEFAULT now(),
    -- Who: the SHA-256 of the token whose console session started it ('' on an open console).
    started_by  text        NOT NULL,
    -- The dead events it replayed: those dead at or after this time.
    dead_since  timestamptz NOT NULL,
    event_ids   uuid[]      NOT NULL
);
COMMENT ON TABLE console_jobs IS
    'Replays of dead order webhooks started from the operator console: who, when, since when, '
    'and which events they made due (their progress is read from outbox).';
