//! Reading a received snapshot while it is parsed.
//!
//! A snapshot holds every object and the watch history. Decoded whole
//! before being written, it was in memory twice while a replica installed
//! it: once decoded and once in the write batch, and the history, decoded
//! into trees, took several times its size. The reader here hands each
//! object and each history revision to a [`SnapshotSink`] as soon as it is
//! parsed, so only the sink's copy stays.
//!
//! The format is the one `rocks::encode_snapshot` writes:
//! `{"revision":R,"compacted":C,"next_replica_id":N,"objects":[[key,object],...],"history":[revision,...]}`.

use super::types::RevisionEvents;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use std::fmt;

/// Where the parts of a snapshot go as they are read.
pub trait SnapshotSink {
    /// One stored object: its key and its JSON, as the snapshot holds it.
    fn object(&mut self, key: &str, json: &RawValue);
    /// One revision of the watch history: its number and its JSON, as the
    /// snapshot holds it (it decodes as a [`RevisionEvents`]).
    fn history(&mut self, revision: u64, json: &RawValue);
}

/// What a snapshot records besides its objects and history, and what the
/// installing replica needs to know of those.
#[derive(Debug)]
pub struct SnapshotSummary {
    pub revision: u64,
    pub compacted: u64,
    pub next_replica_id: u64,
    /// How many objects were handed to the sink.
    pub objects: usize,
    /// The newest revision of the history, decoded: the installing replica
    /// tells its watchers about it, and any watcher further behind then
    /// reads what it missed from the history the snapshot replaced.
    pub last_history: Option<RevisionEvents>,
}

/// Parses a snapshot from `reader`, handing its objects and history to
/// `sink` in the order the snapshot lists them. Every history revision is
/// decoded (one at a time) so that a malformed one fails the read instead
/// of being stored; objects are checked to be JSON. On error the sink may
/// have been handed part of the snapshot.
pub fn read_snapshot<R: std::io::Read>(
    reader: R,
    sink: &mut dyn SnapshotSink,
) -> serde_json::Result<SnapshotSummary> {
    let mut de = serde_json::Deserializer::from_reader(reader);
    let summary = SnapshotSeed { sink }.deserialize(&mut de)?;
    de.end()?;
    Ok(summary)
}

struct SnapshotSeed<'s> {
    sink: &'s mut dyn SnapshotSink,
}

impl<'de> DeserializeSeed<'de> for SnapshotSeed<'_> {
    type Value = SnapshotSummary;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

/// Sets a field read once; a second occurrence is an error, as it is for
/// a derived `Deserialize`.
fn set_once<T, E: de::Error>(slot: &mut Option<T>, value: T, name: &'static str) -> Result<(), E> {
    if slot.is_some() {
        return Err(E::duplicate_field(name));
    }
    *slot = Some(value);
    Ok(())
}

impl<'de> Visitor<'de> for SnapshotSeed<'_> {
    type Value = SnapshotSummary;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a snapshot object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (mut revision, mut compacted, mut next_replica_id) = (None, None, None);
        let mut objects = None;
        let mut history: Option<Option<RevisionEvents>> = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "revision" => set_once(&mut revision, map.next_value()?, "revision")?,
                "compacted" => set_once(&mut compacted, map.next_value()?, "compacted")?,
                "next_replica_id" => set_once(&mut next_replica_id, map.next_value()?, "next_replica_id")?,
                "objects" => {
                    if objects.is_some() {
                        return Err(de::Error::duplicate_field("objects"));
                    }
                    objects = Some(map.next_value_seed(ObjectsSeed {
                        sink: &mut *self.sink,
                    })?);
                }
                "history" => {
                    if history.is_some() {
                        return Err(de::Error::duplicate_field("history"));
                    }
                    history = Some(map.next_value_seed(HistorySeed {
                        sink: &mut *self.sink,
                    })?);
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(SnapshotSummary {
            revision: revision.ok_or_else(|| de::Error::missing_field("revision"))?,
            compacted: compacted.ok_or_else(|| de::Error::missing_field("compacted"))?,
            next_replica_id: next_replica_id.ok_or_else(|| de::Error::missing_field("next_replica_id"))?,
            objects: objects.ok_or_else(|| de::Error::missing_field("objects"))?,
            last_history: history.ok_or_else(|| de::Error::missing_field("history"))?,
        })
    }
}

/// The `objects` array: `[key, object]` pairs, each handed on as read.
struct ObjectsSeed<'s> {
    sink: &'s mut dyn SnapshotSink,
}

impl<'de> DeserializeSeed<'de> for ObjectsSeed<'_> {
    type Value = usize;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ObjectsSeed<'_> {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of [key, object] pairs")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut count = 0;
        while let Some((key, json)) = seq.next_element::<(String, Box<RawValue>)>()? {
            self.sink.object(&key, &json);
            count += 1;
        }
        Ok(count)
    }
}

/// The `history` array: revisions, each checked and handed on as read;
/// the last one is kept decoded.
struct HistorySeed<'s> {
    sink: &'s mut dyn SnapshotSink,
}

impl<'de> DeserializeSeed<'de> for HistorySeed<'_> {
    type Value = Option<RevisionEvents>;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for HistorySeed<'_> {
    type Value = Option<RevisionEvents>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of history revisions")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut last = None;
        while let Some(json) = seq.next_element::<Box<RawValue>>()? {
            let revision: RevisionEvents = serde_json::from_str(json.get())
                .map_err(|e| de::Error::custom(format_args!("a history revision: {e}")))?;
            self.sink.history(revision.revision, &json);
            last = Some(revision);
        }
        Ok(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records what it is handed, in order.
    #[derive(Default)]
    struct Recorded {
        objects: Vec<(String, String)>,
        history: Vec<(u64, String)>,
    }

    impl SnapshotSink for Recorded {
        fn object(&mut self, key: &str, json: &RawValue) {
            self.objects.push((key.to_string(), json.get().to_string()));
        }
        fn history(&mut self, revision: u64, json: &RawValue) {
            self.history.push((revision, json.get().to_string()));
        }
    }

    fn read(text: &str) -> (serde_json::Result<SnapshotSummary>, Recorded) {
        let mut sink = Recorded::default();
        let result = read_snapshot(text.as_bytes(), &mut sink);
        (result, sink)
    }

    const REV_6: &str = r#"{"revision":6,"events":[{"kind":"Added","resource":"configmaps","object":{"metadata":{"name":"b"}},"prev":null}]}"#;
    const REV_7: &str = r#"{"revision":7,"events":[{"kind":"Deleted","resource":"configmaps","object":{"metadata":{"name":"a"}},"prev":{"metadata":{"name":"a"}}}]}"#;

    #[test]
    fn objects_and_history_reach_the_sink_as_stored_and_in_order() {
        let text = format!(
            r#"{{"revision":7,"compacted":2,"next_replica_id":4,"objects":[["/configmaps/default/b",{{"metadata":{{"name":"b"}},"data":{{"k":"\u00e9\n"}}}}],["/configmaps/default/c",{{"metadata":{{"name":"c"}}}}]],"history":[{REV_6},{REV_7}]}}"#
        );
        let (summary, sink) = read(&text);
        let summary = summary.expect("a well-formed snapshot reads");
        assert_eq!(
            (summary.revision, summary.compacted, summary.next_replica_id),
            (7, 2, 4)
        );
        assert_eq!(summary.objects, 2);
        assert_eq!(summary.last_history.map(|r| r.revision), Some(7));
        // The text of each object and revision is kept byte for byte,
        // escapes included: it is what the leader stored.
        assert_eq!(
            sink.objects,
            vec![
                (
                    "/configmaps/default/b".to_string(),
                    r#"{"metadata":{"name":"b"},"data":{"k":"\u00e9\n"}}"#.to_string(),
                ),
                (
                    "/configmaps/default/c".to_string(),
                    r#"{"metadata":{"name":"c"}}"#.to_string()
                ),
            ]
        );
        assert_eq!(sink.history, vec![(6, REV_6.to_string()), (7, REV_7.to_string())]);
    }

    #[test]
    fn the_fields_may_come_in_any_order_and_unknown_ones_are_skipped() {
        let text = format!(
            r#"{{"history":[{REV_6}],"future":{{"x":[1,2]}},"objects":[],"next_replica_id":3,"compacted":0,"revision":6}}"#
        );
        let (summary, sink) = read(&text);
        let summary = summary.expect("field order does not matter");
        assert_eq!((summary.revision, summary.objects), (6, 0));
        assert_eq!(sink.history.len(), 1);
    }

    #[test]
    fn an_empty_history_leaves_nothing_to_announce() {
        let (summary, _) =
            read(r#"{"revision":0,"compacted":0,"next_replica_id":2,"objects":[],"history":[]}"#);
        assert!(summary.expect("an empty store reads").last_history.is_none());
    }

    #[test]
    fn a_malformed_snapshot_is_refused_with_what_is_wrong() {
        let cases = [
            (
                r#"{"compacted":0,"next_replica_id":2,"objects":[],"history":[]}"#,
                "missing field `revision`",
            ),
            (
                r#"{"revision":1,"revision":2,"compacted":0,"next_replica_id":2,"objects":[],"history":[]}"#,
                "duplicate field `revision`",
            ),
            (
                r#"{"revision":1,"compacted":0,"next_replica_id":2,"objects":[["k"]],"history":[]}"#,
                "invalid length 1",
            ),
            (
                r#"{"revision":1,"compacted":0,"next_replica_id":2,"objects":[],"history":[{"events":[]}]}"#,
                "a history revision: missing field `revision`",
            ),
            (
                r#"{"revision":1,"compacted":0,"next_replica_id":2,"objects":[],"history":[]} x"#,
                "trailing characters",
            ),
            (
                r#"{"revision":1,"compacted":0,"next_replica_id":2,"objects":[["k",{"a":]]"#,
                "expected value",
            ),
        ];
        for (text, expected) in cases {
            let (result, _) = read(text);
            let err = result.expect_err(text).to_string();
            assert!(err.contains(expected), "{text}: {err} does not say {expected}");
        }
    }
}
