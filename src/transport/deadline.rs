//! A socket view whose reads and writes share one absolute deadline.
//!
//! Socket timeouts apply per call: a peer sending one byte just before each timeout could keep
//! a handshake open for as long as it likes. [`Deadline`] re-arms the socket timeout with the
//! time *remaining* before every call, so the whole exchange ends by the deadline.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Reads and writes on `stream` that fail with `TimedOut` once `deadline` has passed.
pub(crate) struct Deadline<'a> {
    stream: &'a TcpStream,
    deadline: Instant,
}

impl<'a> Deadline<'a> {
    /// A view of `stream` that must finish its I/O within `timeout` from now.
    pub(crate) fn new(stream: &'a TcpStream, timeout: Duration) -> Self {
        Deadline {
            stream,
            deadline: Instant::now() + timeout,
        }
    }

    fn remaining(&self) -> io::Result<Duration> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "handshake deadline passed",
            ))
        } else {
            // A zero timeout means "none" to the socket API; never pass one.
            Ok(left.max(Duration::from_millis(1)))
        }
    }
}

impl Read for Deadline<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.set_read_timeout(Some(self.remaining()?))?;
        (&mut &*self.stream).read(buf)
    }
}

impl Write for Deadline<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.set_write_timeout(Some(self.remaining()?))?;
        (&mut &*self.stream).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
