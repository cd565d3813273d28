//! The shuffle: this worker serves segments of its map outputs, and fetches
//! other workers' segments for its reduce attempts. Segments stream in
//! chunks, each with its CRC-32, and a fetch checks the total length too, so
//! a truncated or corrupted transfer is a fetch failure, never bad data.

use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use quern_proto as pb;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

/// Bytes per chunk.
const CHUNK: usize = 256 << 10;

/// Serves segments of files under the work directory only.
pub(crate) struct ShuffleService {
    pub(crate) root: PathBuf,
}

type ChunkStream = Pin<Box<dyn Stream<Item = Result<pb::SegmentChunk, Status>> + Send>>;

#[tonic::async_trait]
impl pb::shuffle_server::Shuffle for ShuffleService {
    type FetchSegmentStream = ChunkStream;

    async fn fetch_segment(
        &self,
        request: Request<pb::FetchSegmentRequest>,
    ) -> Result<Response<Self::FetchSegmentStream>, Status> {
        let r = request.into_inner();
        let seg = r.segment.ok_or_else(|| Status::invalid_argument("segment is missing"))?;
        let path = PathBuf::from(&r.path);
        // Only map outputs under our work directory may be read.
        let canonical =
            tokio::fs::canonicalize(&path).await.map_err(|e| Status::not_found(format!("{}: {e}", path.display())))?;
        if !canonical.starts_with(&self.root) || path.components().any(|c| c == std::path::Component::ParentDir) {
            return Err(Status::permission_denied(format!("{} is not a map output of this worker", path.display())));
        }
        let mut file = tokio::fs::File::open(&canonical)
            .await
            .map_err(|e| Status::not_found(format!("{}: {e}", path.display())))?;
        file.seek(SeekFrom::Start(seg.offset)).await.map_err(|e| Status::internal(e.to_string()))?;
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<pb::SegmentChunk, Status>>(4);
        tokio::spawn(async move {
            let mut left = seg.len;
            let mut buf = vec![0u8; CHUNK];
            while left > 0 {
                let want = (left as usize).min(CHUNK);
                let chunk = match file.read_exact(&mut buf[..want]).await {
                    Ok(_) => {
                        left -= want as u64;
                        Ok(pb::SegmentChunk { data: buf[..want].to_vec(), crc32: crc32fast::hash(&buf[..want]) })
                    }
                    Err(e) => {
                        left = 0;
                        Err(Status::data_loss(format!("reading the map output: {e}")))
                    }
                };
                if tx.send(chunk).await.is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }
}

/// Fetches a segment from `address` into the file `dest`.
pub(crate) async fn fetch(
    channel: tonic::transport::Channel,
    token: &quern_proto::TokenAttach,
    path: &str,
    segment: pb::Segment,
    dest: &Path,
) -> Result<(), String> {
    let mut client = pb::shuffle_client::ShuffleClient::with_interceptor(channel, token.clone());
    let request = pb::FetchSegmentRequest { path: path.to_owned(), segment: Some(segment) };
    let mut stream = client.fetch_segment(request).await.map_err(|s| s.message().to_owned())?.into_inner();
    let mut out = tokio::fs::File::create(dest).await.map_err(|e| format!("{}: {e}", dest.display()))?;
    let mut got = 0u64;
    while let Some(chunk) = stream.message().await.map_err(|s| s.message().to_owned())? {
        if crc32fast::hash(&chunk.data) != chunk.crc32 {
            return Err(format!("checksum mismatch at byte {got}"));
        }
        out.write_all(&chunk.data).await.map_err(|e| e.to_string())?;
        got += chunk.data.len() as u64;
    }
    out.flush().await.map_err(|e| e.to_string())?;
    if got != segment.len {
        return Err(format!("segment truncated: {got} of {} bytes", segment.len));
    }
    Ok(())
}
