//! `fsck --remote --repair` on the record: objects found damaged or missing lose their
//! `objects` row and are listed in `objects_damaged`, so the remote no longer counts them as
//! there and the next push that has them sends them again (`add_objects` strikes them off).

use std::collections::BTreeSet;

use super::Record;
use crate::error::Result;
use crate::store::portable;

impl Record {
    /// Mark `names` (objects, and the directories holding them) as not there: their rows in
    /// `objects` deleted, each listed in `objects_damaged`. One transaction.
    pub fn mark_damaged(&mut self, names: &[String]) -> Result<()> {
        let shown = self.shown.clone();
        let fail = |e: postgres::Error| {
            crate::error::Error::store(format!(
                "the remote record {shown} failed while marking damaged objects: {e}"
            ))
        };
        let mut tx = self.client.transaction().map_err(fail)?;
        tx.execute("DELETE FROM objects WHERE name = ANY($1)", &[&names])
            .map_err(fail)?;
        tx.execute(
            "INSERT INTO objects_damaged (name) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING",
            &[&names],
        )
        .map_err(fail)?;
        tx.commit().map_err(fail)
    }

    /// Of `names`, those marked damaged.
    pub fn damaged_among(&mut self, names: &[String]) -> Result<BTreeSet<String>> {
        if names.is_empty() {
            return Ok(BTreeSet::new());
        }
        let rows = self
            .client
            .query(
                "SELECT name FROM objects_damaged WHERE name = ANY($1)",
                &[&names],
            )
            .map_err(|e| self.failed("reading which objects are damaged", e))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// `names` are whole again (a directory whose files a push sent again).
    pub fn clear_damaged(&mut self, names: &[String]) -> Result<()> {
        self.client
            .execute(
                "DELETE FROM objects_damaged WHERE name = ANY($1)",
                &[&names],
            )
            .map_err(|e| self.failed("recording repaired objects", e))?;
        Ok(())
    }

    /// The directories (`dir/<hash>`) runs need whose files include any of `names`.
    pub fn dirs_holding(&mut self, names: &BTreeSet<String>) -> Result<Vec<String>> {
        let rows = self
            .client
            .query(
                "SELECT DISTINCT o.name, c.data FROM run_objects o
                   JOIN contents c ON c.hash = substr(o.name, 5)
                 WHERE o.name LIKE 'dir/%'",
                &[],
            )
            .map_err(|e| self.failed("listing the directories runs need", e))?;
        Ok(rows
            .iter()
            .filter(|r| {
                portable::dir_objects(&r.get::<_, Vec<u8>>(1))
                    .iter()
                    .any(|o| names.contains(o))
            })
            .map(|r| r.get(0))
            .collect())
    }

    /// The runs that need any of `names`.
    pub fn runs_needing(&mut self, names: &[String]) -> Result<Vec<String>> {
        let rows = self
            .client
            .query(
                "SELECT DISTINCT run_id FROM run_objects WHERE name = ANY($1) ORDER BY run_id",
                &[&names],
            )
            .map_err(|e| self.failed("listing the runs that need damaged objects", e))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}
