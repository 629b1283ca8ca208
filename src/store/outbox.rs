//! The OpenLineage outbox: events waiting to be delivered to a server, in the order they were
//! made. A sender (`crate::live`) queues each event once (keyed by event type and OpenLineage run
//! id, so queuing the same run again adds nothing; pending events go to whichever server is
//! configured when they are sent), posts the pending ones in
//! order and marks them `sent`, or `rejected` when the server refuses one for good (a 4xx). What
//! could not be delivered stays `pending` for the next mlrun command or `mlrun export --send`.
//! Bodies are the events as exported: secrets are already masked in the record they come from,
//! and the API key is never part of them.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::Store;
use crate::error::{Error, Result};

/// One queued event.
#[derive(Debug, Clone)]
pub struct OutboxEvent {
    pub seq: i64,
    pub run_id: String,
    pub body: String,
    pub attempts: i64,
}

/// How the POST of an event went, for `outbox_record`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Posted {
    Sent,
    /// refused for good (a 4xx), with the server's words
    Rejected(String),
    /// worth retrying: it stays pending, with the error
    Failed(String),
    /// not posted (an earlier event failed): pending
    NotTried,
}

/// Events of the store waiting to be delivered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pending {
    pub events: i64,
    pub runs: i64,
    /// The last error seen delivering them, if any.
    pub last_error: Option<String>,
}

/// A connection for a sender thread: the store's database, already migrated by the command
/// that owns the store, opened without the sweeps and recovery that `Store::open` runs.
pub fn open_for_sender(dir: &Path) -> Result<Store> {
    let conn = Connection::open(dir.join(super::DB_FILE)).map_err(|e| {
        Error::store("cannot open the lineage store for sending OpenLineage events").cause(e)
    })?;
    super::configure(&conn)?;
    Ok(Store {
        conn,
        dir: dir.to_path_buf(),
    })
}

impl Store {
    /// Queue events (key, body), in order; an event already queued (pending, sent or rejected)
    /// is not queued again. Returns how many were new.
    pub fn outbox_enqueue(
        &mut self,
        run_id: &str,
        events: &[(String, String)],
        now: i64,
    ) -> Result<usize> {
        if events.is_empty() {
            return Ok(0);
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut added = 0;
        {
            let mut ins = tx.prepare_cached(
                "INSERT OR IGNORE INTO openlineage_outbox (endpoint, event_key, run_id, body, queued_at)
                 VALUES ('', ?1, ?2, ?3, ?4)",
            )?;
            for (key, body) in events {
                added += ins.execute(params![key, run_id, body, now])?;
            }
        }
        tx.commit()?;
        Ok(added)
    }

    /// Keep, in one transaction, events that were posted before being queued (the live sender
    /// posts a run's new events at once while nothing older is pending): each with how its POST
    /// went. An event already queued is left as it is.
    pub fn outbox_record(
        &mut self,
        run_id: &str,
        events: &[(String, String, Posted)],
        endpoint: &str,
        now: i64,
    ) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut ins = tx.prepare_cached(
                "INSERT OR IGNORE INTO openlineage_outbox
                   (endpoint, event_key, run_id, body, queued_at, state, done_at, attempts, last_error)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            for (key, body, posted) in events {
                let (endpoint, body, state, done_at, attempts, error) = match posted {
                    Posted::Sent => (endpoint, "", "sent", Some(now), 1, None),
                    Posted::Rejected(why) => {
                        (endpoint, body.as_str(), "rejected", Some(now), 1, Some(why))
                    }
                    Posted::Failed(why) => ("", body.as_str(), "pending", None, 1, Some(why)),
                    Posted::NotTried => ("", body.as_str(), "pending", None, 0, None),
                };
                ins.execute(params![
                    endpoint, key, run_id, body, now, state, done_at, attempts, error
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Queue a run's events to be sent again (`export --send`): events already queued get their
    /// body back and are pending again, keeping their place in the queue; new ones are added.
    pub fn outbox_requeue(
        &mut self,
        run_id: &str,
        events: &[(String, String)],
        now: i64,
    ) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut up = tx.prepare_cached(
                "INSERT INTO openlineage_outbox (endpoint, event_key, run_id, body, queued_at)
                 VALUES ('', ?1, ?2, ?3, ?4)
                 ON CONFLICT (event_key) DO UPDATE
                   SET body = excluded.body, state = 'pending', done_at = NULL",
            )?;
            for (key, body) in events {
                up.execute(params![key, run_id, body, now])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The oldest pending events, in queue order.
    pub fn outbox_next(&self, limit: usize) -> Result<Vec<OutboxEvent>> {
        let mut st = self.conn.prepare_cached(
            "SELECT seq, run_id, body, attempts FROM openlineage_outbox
             WHERE state = 'pending' ORDER BY seq LIMIT ?1",
        )?;
        let rows = st
            .query_map(params![limit as i64], |r| {
                Ok(OutboxEvent {
                    seq: r.get(0)?,
                    run_id: r.get(1)?,
                    body: r.get(2)?,
                    attempts: r.get(3)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    /// The server at `endpoint` took the event: it is not sent again (its body is dropped).
    pub fn outbox_sent(&self, seq: i64, endpoint: &str, now: i64) -> Result<()> {
        self.conn
            .prepare_cached(
                "UPDATE openlineage_outbox SET state = 'sent', body = '', done_at = ?2,
                   attempts = attempts + 1, last_error = NULL, endpoint = ?3 WHERE seq = ?1",
            )?
            .execute(params![seq, now, endpoint])?;
        Ok(())
    }

    /// The server refused the event for good (a 4xx): kept with the reason, not retried.
    pub fn outbox_rejected(&self, seq: i64, endpoint: &str, error: &str, now: i64) -> Result<()> {
        self.conn
            .prepare_cached(
                "UPDATE openlineage_outbox SET state = 'rejected', done_at = ?2,
                   attempts = attempts + 1, last_error = ?3, endpoint = ?4 WHERE seq = ?1",
            )?
            .execute(params![seq, now, error, endpoint])?;
        Ok(())
    }

    /// A delivery attempt failed in a way worth retrying; the event stays pending.
    pub fn outbox_attempt_failed(&self, seq: i64, error: &str) -> Result<()> {
        self.conn
            .prepare_cached(
                "UPDATE openlineage_outbox SET attempts = attempts + 1, last_error = ?2 WHERE seq = ?1",
            )?
            .execute(params![seq, error])?;
        Ok(())
    }

    /// Events still pending, in all or for one run.
    pub fn outbox_pending(&self, run_id: Option<&str>) -> Result<Pending> {
        let (events, runs): (i64, i64) = self.conn.query_row(
            "SELECT count(*), count(DISTINCT run_id) FROM openlineage_outbox
             WHERE state = 'pending' AND (?1 IS NULL OR run_id = ?1)",
            params![run_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let last_error = if events == 0 {
            None
        } else {
            self.conn
                .query_row(
                    "SELECT last_error FROM openlineage_outbox
                     WHERE state = 'pending' AND (?1 IS NULL OR run_id = ?1) AND last_error IS NOT NULL
                     ORDER BY seq LIMIT 1",
                    params![run_id],
                    |r| r.get(0),
                )
                .optional()?
        };
        Ok(Pending {
            events,
            runs,
            last_error,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join(".mlrun")).unwrap();
        (dir, s)
    }

    fn ev(k: &str) -> (String, String) {
        (k.to_string(), format!("{{\"k\":\"{k}\"}}"))
    }

    #[test]
    fn queued_once_delivered_in_order() {
        let (_d, mut s) = store();
        assert_eq!(s.outbox_enqueue("r1", &[ev("a"), ev("b")], 1).unwrap(), 2);
        // queuing the run again adds only what is new
        assert_eq!(
            s.outbox_enqueue("r1", &[ev("a"), ev("b"), ev("c")], 2)
                .unwrap(),
            1
        );
        assert_eq!(s.outbox_enqueue("r2", &[ev("d")], 2).unwrap(), 1);
        let next = s.outbox_next(10).unwrap();
        let bodies: Vec<_> = next.iter().map(|e| e.body.as_str()).collect();
        assert_eq!(
            bodies,
            [
                "{\"k\":\"a\"}",
                "{\"k\":\"b\"}",
                "{\"k\":\"c\"}",
                "{\"k\":\"d\"}"
            ]
        );
        s.outbox_attempt_failed(next[0].seq, "connection refused")
            .unwrap();
        assert_eq!(
            s.outbox_pending(Some("r1")).unwrap(),
            Pending {
                events: 3,
                runs: 1,
                last_error: Some("connection refused".into())
            }
        );
        s.outbox_sent(next[0].seq, "e", 3).unwrap();
        s.outbox_rejected(next[1].seq, "e", "400 Bad Request", 3)
            .unwrap();
        let next = s.outbox_next(10).unwrap();
        assert_eq!(next.len(), 2);
        assert_eq!(next[0].body, "{\"k\":\"c\"}");
        // a sent event is never queued again, unless asked to (`export --send`)
        assert_eq!(s.outbox_enqueue("r1", &[ev("a")], 4).unwrap(), 0);
        assert_eq!(s.outbox_pending(None).unwrap().events, 2);
        assert_eq!(s.outbox_pending(Some("r2")).unwrap().events, 1);
        assert_eq!(s.outbox_pending(Some("r3")).unwrap().events, 0);
        s.outbox_requeue("r1", &[ev("a")], 5).unwrap();
        let next = s.outbox_next(10).unwrap();
        assert_eq!(next[0].body, "{\"k\":\"a\"}", "back in its place");
        assert_eq!(next.len(), 3);
    }
}
