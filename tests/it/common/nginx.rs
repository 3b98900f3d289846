//! nginx with libnginx-mod-rtmp as a CDN origin on free 127.0.0.1 ports.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, stop_child, TempDir};

/// Where Debian's libnginx-mod-rtmp puts the module.
const RTMP_MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";

/// A foreground nginx (`daemon off; master_process off;`) serving `rtmp://127.0.0.1:PORT/live/*`
/// and, over HTTP, the files of its temp dir (`http://127.0.0.1:HTTP_PORT/NAME`).
pub struct Nginx {
    child: Option<Child>,
    rtmp_port: u16,
    http_port: u16,
    dir: TempDir,
    /// More of the `rtmp { server { ... } }` block (e.g. an application that pulls).
    extra: String,
}

impl Nginx {
    /// Starts nginx and waits until its RTMP port accepts connections.
    pub fn start() -> Nginx {
        Nginx::start_with("")
    }

    /// Starts nginx with `extra` added to its RTMP server block, e.g. an edge application:
    /// `application edge { live on; pull rtmp://... app=live name=k; }`.
    pub fn start_with(extra: &str) -> Nginx {
        let dir = TempDir::new("nginx");
        let mut nginx =
            Nginx { child: None, rtmp_port: free_port(), http_port: free_port(), dir, extra: extra.to_string() };
        nginx.write_config();
        nginx.spawn();
        nginx
    }

    /// `rtmp://127.0.0.1:PORT{path}`.
    pub fn rtmp_url(&self, path: &str) -> String {
        format!("rtmp://127.0.0.1:{}{path}", self.rtmp_port)
    }

    /// `http://127.0.0.1:HTTP_PORT{path}` (serves files placed in [`Nginx::www`]).
    pub fn http_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http_port)
    }

    /// The directory the HTTP server serves.
    pub fn www(&self) -> PathBuf {
        self.dir.path().join("www")
    }

    /// Stops nginx (the RTMP port then refuses connections).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_child(&mut child, Duration::from_secs(5));
        }
    }

    /// Starts nginx again on the same ports.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// The last lines of nginx's error log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    fn write_config(&self) {
        let d = self.dir.path();
        std::fs::create_dir_all(d.join("www")).expect("nginx www dir");
        std::fs::create_dir_all(d.join("tmp")).expect("nginx tmp dir");
        let dir = d.display();
        let config = format!(
            "load_module {RTMP_MODULE};
daemon off;
master_process off;
# As root, nginx hands its temp paths to this user: root, since in a test's user namespace
# (the loopback-only one of the browser tests) `nobody` is not mapped and chown fails.
user root root;
error_log {dir}/error.log info;
pid {dir}/nginx.pid;
events {{ worker_connections 256; }}
rtmp {{
    access_log off;
    server {{
        listen 127.0.0.1:{rtmp};
        chunk_size 4096;
        application live {{
            live on;
            record off;
        }}
        {extra}
    }}
}}
http {{
    access_log off;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
    server {{
        listen 127.0.0.1:{http};
        root {dir}/www;
    }}
}}
",
            rtmp = self.rtmp_port,
            http = self.http_port,
            extra = self.extra,
        );
        std::fs::write(d.join("nginx.conf"), config).expect("write nginx.conf");
    }

    fn spawn(&mut self) {
        let d = self.dir.path();
        let child = Command::new("nginx")
            .arg("-p")
            .arg(d)
            .arg("-c")
            .arg(d.join("nginx.conf"))
            .arg("-e")
            .arg(d.join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nginx (is nginx installed? scripts/install-deps.sh)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if TcpStream::connect(("127.0.0.1", self.rtmp_port)).is_ok() {
                return;
            }
            let exited = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() >= deadline {
                panic!(
                    "nginx did not listen on 127.0.0.1:{} (exit: {exited:?})\n--- nginx error.log ---\n{}",
                    self.rtmp_port,
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("--- nginx error.log, last lines ---\n{}\n--- end nginx ---", self.log_tail());
        }
    }
}
