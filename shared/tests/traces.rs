//! X-Ray: the SQS adapter carries the invocation's trace header
//! (`_X_AMZN_TRACE_ID`) as each message's `AWSTraceHeader` system attribute,
//! and drops a malformed one rather than have SQS refuse the message. Checked
//! on the wire: SendMessageBatch requests to a fake SQS on loopback (moto
//! ignores system attributes in batches).

mod common;

use std::sync::{Arc, Mutex};

use serde_json::Value;
use switchboard::adapters::sqs::SqsQueue;
use switchboard::ports::MessageQueue;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Answers every SendMessageBatch with success for entry "0" and keeps the request bodies.
async fn fake_sqs() -> (String, Arc<Mutex<Vec<Value>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let kept = bodies.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream, kept.clone()));
        }
    });
    (format!("http://{addr}"), bodies)
}

async fn serve(mut stream: TcpStream, bodies: Arc<Mutex<Vec<Value>>>) {
    let mut buffer = Vec::new();
    // Bounded: at most 16 requests per connection, 1 MiB each.
    for _ in 0..16 {
        let (head_end, length) = loop {
            if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                break (end + 4, length);
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) if buffer.len() + n <= 1 << 20 => buffer.extend_from_slice(&chunk[..n]),
                Ok(_) => return,
            }
        };
        while buffer.len() < head_end + length {
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        }
        let body: Vec<u8> = buffer.drain(..head_end + length).skip(head_end).collect();
        bodies
            .lock()
            .unwrap()
            .push(serde_json::from_slice(&body).unwrap_or(Value::Null));
        let answer = r#"{"Successful":[{"Id":"0","MessageId":"m-1","MD5OfMessageBody":"00000000000000000000000000000000"}],"Failed":[]}"#;
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: {}\r\n\r\n{answer}",
            answer.len()
        );
        if stream.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}

#[tokio::test]
async fn sends_carry_the_invocation_trace_header_and_drop_a_malformed_one() {
    let (endpoint, bodies) = fake_sqs().await;
    let sdk = common::test_sdk_config(Some(&endpoint)).await;
    let queue = SqsQueue::new(
        switchboard::aws::sqs(&sdk),
        format!("{endpoint}/123456789012/deliveries"),
    );
    let header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
    let cases = [
        (Some(header), Some(header)),
        // Not Root=1-…, or a character outside the header's alphabet: not sent.
        (Some("Root=1-x\r\nInjected: yes"), None),
        (Some("Self=1-abc"), None),
        (None, None),
    ];
    for (set, expected) in cases {
        // SAFETY: this test binary has this one test; nothing else reads the variable meanwhile.
        unsafe {
            match set {
                Some(value) => std::env::set_var("_X_AMZN_TRACE_ID", value),
                None => std::env::remove_var("_X_AMZN_TRACE_ID"),
            }
        }
        assert_eq!(queue.send_batch(&["hello".into()]).await.unwrap(), []);
        let body = bodies.lock().unwrap().pop().expect("one request");
        let entry = &body["Entries"][0];
        assert_eq!(entry["MessageBody"], "hello", "{body}");
        let sent = &entry["MessageSystemAttributes"]["AWSTraceHeader"];
        match expected {
            Some(header) => {
                assert_eq!(sent["StringValue"], header, "{body}");
                assert_eq!(sent["DataType"], "String", "{body}");
            }
            None => assert!(entry.get("MessageSystemAttributes").is_none(), "{body}"),
        }
    }
}
