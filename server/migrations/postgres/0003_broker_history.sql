-- Each topic's stream (epoch, latest offset, the events still kept, as a
-- JSON array), written by a graceful shutdown of the in-process broker and
-- consumed by the next start, so clients resume across a restart.
CREATE TABLE broker_history (
    topic       TEXT   PRIMARY KEY NOT NULL,
    epoch       TEXT   NOT NULL,
    last_offset BIGINT NOT NULL,
    events      TEXT   NOT NULL,
    saved_at    TEXT   NOT NULL
);
