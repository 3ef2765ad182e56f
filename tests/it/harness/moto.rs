//! A real SQS-compatible server for the tests that need one: `moto_server` (Python package
//! `moto[server]`, which `.ci/run` installs) on a loopback port of its choosing, with one
//! queue.

use std::{
    future::ready,
    io::{BufRead, BufReader},
    process::{ChildStderr, Stdio},
    sync::mpsc::Receiver,
    time::Duration,
};

use aws_sdk_sqs::types::QueueAttributeName;

use super::{aws::sdk_config, eventually};

/// `moto_server` with the queue `lector-textract-notices`; stopped when dropped.
pub struct MotoSqs {
    pub endpoint: String,
    pub queue_url: String,
    child: std::process::Child,
}

impl MotoSqs {
    /// Starts it and makes the queue; `None` when moto is not installed (another program:
    /// `MOTO_SERVER`). It takes a port of its own and says which on stderr: a port chosen
    /// here would be free only until something else took it in the second Python needs to
    /// start.
    pub async fn start() -> Option<MotoSqs> {
        let program = std::env::var("MOTO_SERVER").unwrap_or_else(|_| "moto_server".into());
        let mut child = std::process::Command::new(&program)
            .args(["-H", "127.0.0.1", "-p", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .ok()?;
        let port = listening_port(child.stderr.take().unwrap());
        // Up to a minute: a loaded machine (coverage runs) starts Python slowly.
        let port = eventually(Duration::from_secs(60), || ready(port.try_recv().ok())).await;
        let mut moto = MotoSqs {
            endpoint: format!("http://127.0.0.1:{}", port.unwrap_or_default()),
            queue_url: String::new(),
            child,
        };
        assert!(port.is_some(), "moto_server did not say where it listens");
        let client = &moto.client().await;
        let created = eventually(Duration::from_secs(60), || async move {
            let created = client
                .create_queue()
                .queue_name("lector-textract-notices")
                .send()
                .await
                .ok()?;
            Some(created.queue_url().unwrap().to_owned())
        })
        .await;
        match created {
            Some(queue_url) => moto.queue_url = queue_url,
            None => panic!("moto_server did not start on {}", moto.endpoint),
        }
        Some(moto)
    }

    /// [`MotoSqs::start`], or `None` once it has said that the test is skipped.
    pub async fn start_or_skip() -> Option<MotoSqs> {
        let moto = Self::start().await;
        if moto.is_none() {
            println!(
                "skipped: moto_server is not installed (pip install 'moto[server]'; .ci/run does)"
            );
        }
        moto
    }

    pub async fn client(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&sdk_config(&self.endpoint).await)
    }

    /// Puts `body` on the queue.
    pub async fn send(&self, body: &str) {
        self.client()
            .await
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }

    /// Messages on the queue, waiting or being handled (not yet deleted).
    pub async fn messages_left(&self) -> i64 {
        let attributes = self
            .client()
            .await
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .unwrap();
        let count = |name: QueueAttributeName| {
            attributes
                .attributes()
                .and_then(|a| a.get(&name))
                .map_or(0, |v| v.parse::<i64>().unwrap())
        };
        count(QueueAttributeName::ApproximateNumberOfMessages)
            + count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
    }
}

/// The port moto's server (Werkzeug) says it listens on, once it does. Its stderr is read to
/// the end, so that the request log it writes there never fills the pipe.
fn listening_port(stderr: ChildStderr) -> Receiver<u16> {
    let (port, said) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("Running on http://127.0.0.1:").nth(1) {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                let _ = port.send(digits.parse().expect("a port number"));
            }
        }
    });
    said
}

impl Drop for MotoSqs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
