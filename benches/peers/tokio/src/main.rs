//! tokio's echo server, the peer of `examples/echo_server.rs`:
//! `peers-tokio echo ADDR WORKERS`. One task per connection, 16 KiB buffer.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (addr, workers) = match args.as_slice() {
        [_, cmd, addr, workers] if cmd == "echo" => (addr.clone(), workers.parse().unwrap()),
        _ => {
            eprintln!("usage: peers-tokio echo ADDR WORKERS");
            std::process::exit(2)
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let listener = TcpListener::bind(&addr).await.unwrap();
        println!("tokio echo server on {}", listener.local_addr().unwrap());
        loop {
            let Ok((mut conn, _)) = listener.accept().await else { continue };
            let _ = conn.set_nodelay(true);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if conn.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
}
