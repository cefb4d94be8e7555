//! `rkctl cluster members|remove-replica`.

use crate::error::{CliError, Result};
use crate::table::Table;
use crate::Ctx;
use rk_api::{ApiError, Reason};
use rk_proto::v1::cluster_client::ClusterClient;
use rk_proto::v1::{MembersRequest, MembersResponse, RemoveReplicaRequest};

#[derive(Debug, clap::Subcommand)]
pub enum ClusterCmd {
    /// List the control-plane replicas and their roles.
    Members,
    /// Remove a replica from the control plane.
    RemoveReplica {
        /// The replica's ID (see `rkctl cluster members`).
        #[arg(value_name = "ID")]
        id: u64,
    },
}

fn status_error(st: &tonic::Status, servers: &[String]) -> CliError {
    // Statuses the server sends carry a reason; transport failures do not.
    let from_server = st.metadata().get("rk-reason").is_some();
    if !from_server && (rk_client::error::is_broken_connection(st) || st.code() == tonic::Code::Unavailable) {
        return CliError::Api(ApiError::new(
            Reason::ServiceUnavailable,
            format!(
                "Unable to connect to the server {}: {}",
                servers.join(","),
                st.message()
            ),
        ));
    }
    CliError::Api(rk_client::error::from_status(st))
}

/// The members table.
pub fn members_table(r: &MembersResponse) -> Table {
    let mut rows: Vec<Vec<String>> = r
        .members
        .iter()
        .map(|m| {
            let role = if m.leader || (r.leader_id != 0 && m.id == r.leader_id) {
                "leader"
            } else if m.voter {
                "follower"
            } else {
                "learner"
            };
            vec![m.id.to_string(), m.addr.clone(), role.to_string()]
        })
        .collect();
    rows.sort_by_key(|r| r[0].parse::<u64>().unwrap_or(u64::MAX));
    Table {
        headers: vec!["ID".into(), "ADDRESS".into(), "ROLE".into()],
        rows,
    }
}

pub async fn run(ctx: &mut Ctx<'_>, cmd: ClusterCmd) -> Result<()> {
    let client = ctx.client()?;
    let servers = client.servers().to_vec();
    let mut cc = ClusterClient::new(client.channel());
    match cmd {
        ClusterCmd::Members => {
            // Any live replica can answer: try each in turn, a dead or cut
            // one for at most a few seconds.
            let mut last = None;
            let mut answer = None;
            for (_, ch) in client.channels_in_order() {
                let mut one = ClusterClient::new(ch);
                match tokio::time::timeout(std::time::Duration::from_secs(3), one.members(MembersRequest {}))
                    .await
                {
                    Ok(Ok(r)) => {
                        answer = Some(r.into_inner());
                        break;
                    }
                    Ok(Err(st)) => last = Some(st),
                    Err(_) => last = Some(tonic::Status::unavailable("no answer within 3s")),
                }
            }
            let r = match (answer, last) {
                (Some(r), _) => r,
                (None, Some(st)) => return Err(status_error(&st, &servers)),
                (None, None) => return Err(CliError::local("the configuration lists no servers")),
            };
            ctx.print(&members_table(&r).render(true));
        }
        ClusterCmd::RemoveReplica { id } => {
            cc.remove_replica(RemoveReplicaRequest { id })
                .await
                .map_err(|st| status_error(&st, &servers))?;
            ctx.print(&format!("replica {id} removed\n"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rk_proto::v1::Member;

    #[test]
    fn members() {
        let r = MembersResponse {
            members: vec![
                Member {
                    id: 2,
                    addr: "10.0.0.2:7443".into(),
                    voter: true,
                    leader: false,
                },
                Member {
                    id: 1,
                    addr: "10.0.0.1:7443".into(),
                    voter: true,
                    leader: true,
                },
                Member {
                    id: 3,
                    addr: "10.0.0.3:7443".into(),
                    voter: false,
                    leader: false,
                },
            ],
            leader_id: 1,
            term: 4,
            last_applied: 10,
            revision: 9,
        };
        assert_eq!(
            members_table(&r).render(true),
            "\
ID    ADDRESS         ROLE
1     10.0.0.1:7443   leader
2     10.0.0.2:7443   follower
3     10.0.0.3:7443   learner
"
        );
    }
}
