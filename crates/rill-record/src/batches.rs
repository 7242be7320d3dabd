//! Splitting a buffer into whole batches.

use crate::batch::BatchView;
use crate::error::BatchError;

/// Why a [`Batches`] iteration stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchesEnd {
    /// Every byte of the buffer belonged to a whole batch.
    Complete,
    /// The buffer ends part-way through a batch that starts at `position`:
    /// normal at the end of a fetch, a torn write at the end of a log.
    Partial {
        position: usize,
        needed: usize,
        available: usize,
    },
    /// The bytes at `position` are not the start of a batch.
    Invalid { position: usize, error: BatchError },
}

/// Iterates the whole batches at the start of a buffer, checking framing
/// only (length and magic, not the CRC), without allocating.
///
/// ```
/// use rill_record::{BatchBuilder, Batches, BatchesEnd, NewRecord};
/// let mut buf = BatchBuilder::new(0).with_records(&[NewRecord::value(b"a")]).finish().unwrap();
/// let whole = buf.len();
/// buf.extend_from_slice(&buf.clone()[..20]);
/// let mut batches = Batches::new(&buf);
/// assert_eq!(batches.by_ref().count(), 1);
/// assert_eq!(batches.position(), whole);
/// assert!(matches!(batches.end(), Some(BatchesEnd::Partial { .. })));
/// ```
#[derive(Debug, Clone)]
pub struct Batches<'a> {
    buf: &'a [u8],
    position: usize,
    end: Option<BatchesEnd>,
}

impl<'a> Batches<'a> {
    pub fn new(buf: &'a [u8]) -> Batches<'a> {
        Batches {
            buf,
            position: 0,
            end: None,
        }
    }

    /// Bytes of whole batches yielded so far: where the next batch starts.
    pub fn position(&self) -> usize {
        self.position
    }

    /// Why iteration stopped, once it has.
    pub fn end(&self) -> Option<&BatchesEnd> {
        self.end.as_ref()
    }
}

impl<'a> Iterator for Batches<'a> {
    type Item = BatchView<'a>;

    fn next(&mut self) -> Option<BatchView<'a>> {
        if self.end.is_some() {
            return None;
        }
        let position = self.position;
        let rest = &self.buf[position..];
        if rest.is_empty() {
            self.end = Some(BatchesEnd::Complete);
            return None;
        }
        match BatchView::new(rest) {
            Ok(batch) => {
                self.position += batch.size();
                Some(batch)
            }
            Err(BatchError::Truncated { needed, available }) => {
                self.end = Some(BatchesEnd::Partial {
                    position,
                    needed,
                    available,
                });
                None
            }
            Err(error) => {
                self.end = Some(BatchesEnd::Invalid { position, error });
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BatchBuilder, NewRecord};

    fn batch(value: &[u8]) -> Vec<u8> {
        BatchBuilder::new(0)
            .with_records(&[NewRecord::value(value)])
            .finish()
            .unwrap()
    }

    #[test]
    fn splits_consecutive_batches_and_reports_complete() {
        let mut buf = batch(b"one");
        buf.extend(batch(b"two-two"));
        buf.extend(batch(b"three"));
        let mut batches = Batches::new(&buf);
        let sizes: Vec<usize> = batches.by_ref().map(|b| b.size()).collect();
        assert_eq!(sizes.len(), 3);
        assert_eq!(sizes.iter().sum::<usize>(), buf.len());
        assert_eq!(batches.end(), Some(&BatchesEnd::Complete));
    }

    #[test]
    fn zero_filled_tail_is_invalid_not_partial() {
        let mut buf = batch(b"one");
        let first = buf.len();
        buf.extend([0u8; 4096]);
        let mut batches = Batches::new(&buf);
        assert_eq!(batches.by_ref().count(), 1);
        assert_eq!(
            batches.end(),
            Some(&BatchesEnd::Invalid {
                position: first,
                error: BatchError::LengthOutOfRange { batch_length: 0 }
            })
        );
    }

    #[test]
    fn empty_buffer_is_complete() {
        let mut batches = Batches::new(&[]);
        assert_eq!(batches.next().map(|b| b.size()), None);
        assert_eq!(batches.end(), Some(&BatchesEnd::Complete));
    }
}
