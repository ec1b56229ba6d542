//! Every message survives encode -> decode, for arbitrary field values (proptest).

use meshml_protocol::DatasetId;
use meshml_protocol::{
    decode, encode, Announcement, Capabilities, ChunkId, ConsensusKind, ErrorCode, Heartbeat,
    Hello, JobId, ModelId, NodeId, Piece, RemoteError, Request, Response, TaskId, TaskState,
    MAX_FRAME,
};
use proptest::prelude::*;

fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_.-]{0,24}"
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..256)
}

fn chunk_id() -> impl Strategy<Value = ChunkId> {
    any::<[u8; 32]>().prop_map(ChunkId::from_bytes)
}

fn node() -> impl Strategy<Value = NodeId> {
    text().prop_map(NodeId::new)
}

fn heartbeat() -> impl Strategy<Value = Heartbeat> {
    (node(), any::<u64>(), any::<u32>()).prop_map(|(node, seq, running_tasks)| Heartbeat {
        node,
        seq,
        running_tasks,
    })
}

fn hello() -> impl Strategy<Value = Hello> {
    (any::<u32>(), node(), text(), any::<(u32, u64, u64)>()).prop_map(
        |(v, node, cluster, (c, m, d))| Hello {
            protocol_version: v,
            node,
            cluster,
            capabilities: Capabilities {
                cores: c,
                memory_bytes: m,
                free_disk_bytes: d,
                started_ms: 0,
            },
        },
    )
}

fn piece() -> impl Strategy<Value = Piece> {
    (any::<u64>(), any::<u64>(), bytes()).prop_map(|(offset, total_len, bytes)| Piece {
        offset,
        total_len,
        bytes,
    })
}

fn error() -> impl Strategy<Value = RemoteError> {
    let code = prop_oneof![
        Just(ErrorCode::BadRequest),
        Just(ErrorCode::NotFound),
        Just(ErrorCode::StaleTerm),
        Just(ErrorCode::Unavailable),
        Just(ErrorCode::Internal),
        Just(ErrorCode::VersionMismatch),
    ];
    (code, text(), any::<bool>()).prop_map(|(code, message, retryable)| RemoteError {
        code,
        message,
        retryable,
    })
}

fn state() -> impl Strategy<Value = TaskState> {
    prop_oneof![
        Just(TaskState::Queued),
        Just(TaskState::Running),
        Just(TaskState::Succeeded),
        Just(TaskState::Failed),
        Just(TaskState::Cancelled),
    ]
}

fn consensus_kind() -> impl Strategy<Value = ConsensusKind> {
    prop_oneof![
        Just(ConsensusKind::AppendEntries),
        Just(ConsensusKind::Vote),
        Just(ConsensusKind::InstallSnapshot),
    ]
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        hello().prop_map(Request::Hello),
        heartbeat().prop_map(Request::Heartbeat),
        (chunk_id(), any::<u64>(), any::<u32>()).prop_map(|(id, offset, max_len)| {
            Request::GetChunk {
                id,
                offset,
                max_len,
            }
        }),
        (chunk_id(), piece()).prop_map(|(id, piece)| Request::PutChunk { id, piece }),
        (text(), any::<Option<u32>>(), any::<u64>(), any::<u32>()).prop_map(
            |(m, version, offset, max_len)| {
                Request::GetModel {
                    model: ModelId::new(m),
                    version,
                    offset,
                    max_len,
                }
            }
        ),
        (text(), any::<(u32, u32)>(), any::<u64>(), bytes()).prop_map(|(j, t, term, spec)| {
            Request::AssignTask {
                job: JobId::new(j),
                task: TaskId::new(t.0, t.1),
                term,
                spec,
            }
        }),
        (
            text(),
            any::<(u32, u32)>(),
            any::<u64>(),
            state(),
            bytes(),
            proptest::option::of(error())
        )
            .prop_map(|(j, t, term, state, result, error)| Request::TaskUpdate {
                job: JobId::new(j),
                task: TaskId::new(t.0, t.1),
                term,
                state,
                result,
                error
            }),
        bytes().prop_map(|spec| Request::SubmitJob { spec }),
        text().prop_map(|j| Request::JobStatus { job: JobId::new(j) }),
        text().prop_map(|j| Request::CancelJob { job: JobId::new(j) }),
        (
            text(),
            any::<Option<u32>>(),
            any::<(u32, u32)>(),
            bytes(),
            any::<bool>()
        )
            .prop_map(
                |(m, version, (rows, cols), features, proba)| Request::Predict {
                    model: ModelId::new(m),
                    version,
                    rows,
                    cols,
                    features,
                    proba
                }
            ),
        Just(Request::ClusterInfo),
        text().prop_map(|peer| Request::JoinCluster { peer }),
        text().prop_map(|initiator| Request::PromiseFormation { initiator }),
        (text(), proptest::collection::vec(chunk_id(), 0..4), text()).prop_map(
            |(owner, chunks, source)| Request::Replicate {
                owner,
                chunks,
                source
            }
        ),
        bytes().prop_map(|command| Request::Propose { command }),
        text().prop_map(|d| Request::DatasetChunks {
            dataset: DatasetId::new(d)
        }),
        (consensus_kind(), bytes())
            .prop_map(|(kind, payload)| Request::Consensus { kind, payload }),
        (
            text(),
            any::<u32>(),
            chunk_id(),
            any::<u32>(),
            any::<u32>(),
            any::<bool>()
        )
            .prop_map(|(model, version, chunk, offset, rows, proba)| {
                Request::PredictChunk {
                    model,
                    version,
                    chunk,
                    offset,
                    rows,
                    proba,
                }
            }),
        (
            text(),
            any::<u64>(),
            text(),
            any::<u64>(),
            proptest::collection::vec((any::<u32>(), chunk_id()), 0..8),
            bytes()
        )
            .prop_map(|(job, term, dataset, pass, chunks, spec)| {
                Request::TrainChunks {
                    job: JobId::new(job),
                    term,
                    dataset,
                    pass,
                    chunks,
                    spec,
                }
            }),
    ]
}

fn response() -> impl Strategy<Value = Response> {
    prop_oneof![
        Just(Response::Ack),
        hello().prop_map(Response::Hello),
        piece().prop_map(Response::Piece),
        text().prop_map(|j| Response::JobAccepted { job: JobId::new(j) }),
        (text(), any::<u32>(), any::<u32>(), state()).prop_map(|(j, done, total, state)| {
            Response::JobStatus {
                job: JobId::new(j),
                done,
                total,
                state,
            }
        }),
        (
            proptest::collection::vec(any::<u32>(), 0..64),
            bytes(),
            any::<u32>()
        )
            .prop_map(|(classes, proba, version)| Response::Prediction {
                classes,
                proba,
                version
            }),
        (
            proptest::collection::vec(any::<u32>(), 0..64),
            bytes(),
            bytes()
        )
            .prop_map(|(classes, values, proba)| Response::ChunkPredictions {
                classes,
                values,
                proba
            }),
        proptest::collection::vec(chunk_id(), 0..8).prop_map(|ids| Response::Chunks { ids }),
        (any::<bool>(), proptest::option::of(text()), any::<u64>()).prop_map(
            |(initialized, driver, term)| Response::ClusterInfo {
                initialized,
                driver,
                term
            }
        ),
        bytes().prop_map(|payload| Response::Consensus { payload }),
        (
            proptest::collection::vec(
                (any::<u32>(), bytes().prop_map(serde_bytes::ByteBuf::from)),
                0..8
            ),
            any::<u64>()
        )
            .prop_map(|(partials, ms)| Response::Trained { partials, ms }),
        error().prop_map(Response::Error),
    ]
}

fn announcement() -> impl Strategy<Value = Announcement> {
    prop_oneof![
        heartbeat().prop_map(Announcement::Heartbeat),
        node().prop_map(|node| Announcement::Leaving { node }),
        (node(), any::<u64>()).prop_map(|(node, term)| Announcement::DriverChanged { node, term }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn requests_round_trip(m in request()) {
        let b = encode(&m, MAX_FRAME).unwrap();
        prop_assert_eq!(decode::<Request>(&b, MAX_FRAME).unwrap(), m);
    }

    #[test]
    fn responses_round_trip(m in response()) {
        let b = encode(&m, MAX_FRAME).unwrap();
        prop_assert_eq!(decode::<Response>(&b, MAX_FRAME).unwrap(), m);
    }

    #[test]
    fn announcements_round_trip(m in announcement()) {
        let b = encode(&m, MAX_FRAME).unwrap();
        prop_assert_eq!(decode::<Announcement>(&b, MAX_FRAME).unwrap(), m);
    }

    #[test]
    fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode::<Request>(&b, MAX_FRAME);
        let _ = decode::<Response>(&b, MAX_FRAME);
        let _ = decode::<Announcement>(&b, MAX_FRAME);
    }
}
