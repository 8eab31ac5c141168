//! Counting the rows of a `COPY … TO STDOUT` stream as it passes, in text or binary format.

/// Counts rows in a COPY stream fed in pieces of any size.
#[derive(Debug)]
pub(crate) enum RowCounter {
    /// Text format: one row per line (newlines inside values are escaped).
    Text { rows: i64 },
    /// Binary format: tuples parsed by their field lengths.
    Binary(Binary),
}

impl RowCounter {
    pub(crate) fn new(binary: bool) -> Self {
        if binary {
            Self::Binary(Binary::default())
        } else {
            Self::Text { rows: 0 }
        }
    }

    pub(crate) fn feed(&mut self, data: &[u8]) {
        match self {
            Self::Text { rows } => {
                #[allow(clippy::naive_bytecount)] // the compiler vectorises this loop
                let lines = data.iter().filter(|&&b| b == b'\n').count();
                *rows += lines as i64;
            }
            Self::Binary(b) => b.feed(data),
        }
    }

    pub(crate) fn rows(&self) -> i64 {
        match self {
            Self::Text { rows } => *rows,
            Self::Binary(b) => b.rows,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Signature, flags: skipped.
    Header,
    /// The header extension's length.
    ExtensionLength,
    /// A tuple's field count (-1 ends the data).
    FieldCount,
    /// A field's length (-1 is NULL).
    FieldLength,
    Done,
}

#[derive(Debug)]
pub(crate) struct Binary {
    state: State,
    skip: u64,
    int: [u8; 4],
    have: usize,
    fields_left: i32,
    rows: i64,
}

impl Default for Binary {
    fn default() -> Self {
        Self {
            state: State::Header,
            // "PGCOPY\n\xff\r\n\0" and the flags field.
            skip: 11 + 4,
            int: [0; 4],
            have: 0,
            fields_left: 0,
            rows: 0,
        }
    }
}

impl Binary {
    fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() && self.state != State::Done {
            if self.skip > 0 {
                let n = (self.skip.min(data.len() as u64)) as usize;
                self.skip -= n as u64;
                data = &data[n..];
                if self.skip == 0 && self.state == State::Header {
                    self.state = State::ExtensionLength;
                }
                continue;
            }
            let width = if self.state == State::FieldCount {
                2
            } else {
                4
            };
            if self.have == 0 && data.len() >= width {
                // The whole word is here: no copy through `int`.
                let value = if width == 2 {
                    i32::from(i16::from_be_bytes([data[0], data[1]]))
                } else {
                    i32::from_be_bytes([data[0], data[1], data[2], data[3]])
                };
                data = &data[width..];
                self.next(value);
                continue;
            }
            let n = (width - self.have).min(data.len());
            self.int[self.have..self.have + n].copy_from_slice(&data[..n]);
            self.have += n;
            data = &data[n..];
            if self.have < width {
                return;
            }
            self.have = 0;
            let value = if width == 2 {
                i32::from(i16::from_be_bytes([self.int[0], self.int[1]]))
            } else {
                i32::from_be_bytes(self.int)
            };
            self.next(value);
        }
    }

    fn next(&mut self, value: i32) {
        match self.state {
            State::ExtensionLength => {
                self.skip = u64::try_from(value).unwrap_or(0);
                self.state = State::FieldCount;
            }
            State::FieldCount if value < 0 => self.state = State::Done,
            State::FieldCount => {
                self.rows += 1;
                self.fields_left = value;
                if value > 0 {
                    self.state = State::FieldLength;
                }
            }
            State::FieldLength => {
                self.skip = u64::try_from(value).unwrap_or(0);
                self.fields_left -= 1;
                if self.fields_left == 0 {
                    self.state = State::FieldCount;
                }
            }
            State::Header | State::Done => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A binary COPY stream of `rows` rows of (int4, text or NULL).
    fn binary_stream(rows: usize) -> Vec<u8> {
        let mut out = b"PGCOPY\n\xff\r\n\0".to_vec();
        out.extend(0i32.to_be_bytes());
        out.extend(3i32.to_be_bytes());
        out.extend(b"ext");
        for i in 0..rows {
            out.extend(2i16.to_be_bytes());
            out.extend(4i32.to_be_bytes());
            out.extend((i as i32).to_be_bytes());
            if i % 3 == 0 {
                out.extend((-1i32).to_be_bytes());
            } else {
                let text = format!("row {i} with \n and \u{ff}");
                out.extend((text.len() as i32).to_be_bytes());
                out.extend(text.as_bytes());
            }
        }
        out.extend((-1i16).to_be_bytes());
        out
    }

    #[test]
    fn binary_rows_are_counted_whatever_the_piece_sizes() {
        let stream = binary_stream(1000);
        for piece in [1, 2, 3, 7, 64, 4096, stream.len()] {
            let mut c = RowCounter::new(true);
            for p in stream.chunks(piece) {
                c.feed(p);
            }
            assert_eq!(c.rows(), 1000, "pieces of {piece}");
        }
        let mut empty = RowCounter::new(true);
        empty.feed(&binary_stream(0));
        assert_eq!(empty.rows(), 0);
    }

    #[test]
    fn text_rows_are_lines() {
        let mut c = RowCounter::new(false);
        c.feed(b"1\tone\\nline\n2\t\\N\n");
        c.feed(b"3\tthree\n");
        assert_eq!(c.rows(), 3);
    }
}
