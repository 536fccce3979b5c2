//! Rows of an export file, one at a time: CSV (UTF-8, with or without a BOM, or GBK,
//! told apart by whether the first 64 KiB are UTF-8) or Excel `.xlsx` (told by its
//! ZIP signature; the first worksheet, streamed cell by cell).

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use calamine::{Data, Reader, Xlsx};

use crate::error::{AppError, AppResult};

/// One data row: its spreadsheet row number (the header is row 1) and its cells.
pub struct Record {
    pub row: u64,
    pub cells: Vec<String>,
}

enum Source {
    Csv(Box<csv::Reader<Box<dyn Read>>>),
    Xlsx(XlsxRows),
}

/// The rows of one file after its header.
pub struct Rows {
    headers: Vec<String>,
    source: Source,
    format: &'static str,
    next_row: u64,
}

fn bad(message: impl Into<String>) -> AppError {
    AppError::bad_input(message.into())
}

impl Rows {
    pub fn open(path: &Path) -> AppResult<Rows> {
        let mut head = vec![0u8; 64 * 1024];
        let n = {
            let mut f = File::open(path).map_err(|e| bad(format!("cannot read the file: {e}")))?;
            let mut n = 0;
            while n < head.len() {
                match f.read(&mut head[n..]) {
                    Ok(0) => break,
                    Ok(k) => n += k,
                    Err(e) => return Err(bad(format!("cannot read the file: {e}"))),
                }
            }
            n
        };
        head.truncate(n);
        if n == 0 {
            return Err(bad("the file is empty"));
        }
        if head.starts_with(b"PK\x03\x04") {
            let (headers, rows) = XlsxRows::open(path)?;
            return Ok(Rows {
                headers,
                source: Source::Xlsx(rows),
                format: "xlsx",
                next_row: 2,
            });
        }
        // UTF-8 unless the head is not (an error other than a character cut at the end).
        let utf8 = match std::str::from_utf8(&head) {
            Ok(_) => true,
            Err(e) => e.error_len().is_none(),
        };
        let file = File::open(path).map_err(|e| bad(format!("cannot read the file: {e}")))?;
        let decoded: Box<dyn Read> = Box::new(
            encoding_rs_io::DecodeReaderBytesBuilder::new()
                .encoding(Some(if utf8 {
                    encoding_rs::UTF_8
                } else {
                    encoding_rs::GB18030
                }))
                .bom_override(true)
                .build(BufReader::with_capacity(256 * 1024, file)),
        );
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .has_headers(false)
            .from_reader(decoded);
        let mut header = csv::StringRecord::new();
        if !reader
            .read_record(&mut header)
            .map_err(|e| bad(format!("the header row is not CSV: {e}")))?
        {
            return Err(bad("the file has no header row"));
        }
        Ok(Rows {
            headers: header.iter().map(clean_header).collect(),
            source: Source::Csv(Box::new(reader)),
            format: if utf8 { "csv-utf8" } else { "csv-gbk" },
            next_row: 2,
        })
    }

    pub fn headers(&self) -> &[String] {
        &self.headers
    }

    pub fn format(&self) -> &'static str {
        self.format
    }

    /// The next row with any non-empty cell.
    pub fn next_record(&mut self) -> AppResult<Option<Record>> {
        loop {
            let row = self.next_row;
            let cells = match &mut self.source {
                Source::Csv(reader) => {
                    let mut record = csv::StringRecord::new();
                    match reader.read_record(&mut record) {
                        Ok(false) => return Ok(None),
                        Ok(true) => record.iter().map(str::to_string).collect::<Vec<_>>(),
                        Err(e) => return Err(bad(format!("row {row}: not CSV: {e}"))),
                    }
                }
                Source::Xlsx(rows) => match rows.next_row()? {
                    None => return Ok(None),
                    Some((r, cells)) => {
                        self.next_row = r;
                        cells
                    }
                },
            };
            let row = self.next_row;
            self.next_row += 1;
            if cells.iter().any(|c| !c.trim().is_empty()) {
                return Ok(Some(Record { row, cells }));
            }
        }
    }
}

/// Header names compared without spaces, a BOM or the `*` of required columns.
fn clean_header(h: &str) -> String {
    h.trim_start_matches('\u{feff}')
        .trim()
        .trim_end_matches('*')
        .trim()
        .to_string()
}

/// The first worksheet of an `.xlsx`, a row at a time: a thread owns the workbook and
/// its cell stream (which borrows it) and hands rows over a bounded channel, so only
/// the shared-string table and a few rows are in memory at once.
pub struct XlsxRows {
    rx: std::sync::mpsc::Receiver<AppResult<(u64, Vec<String>)>>,
}

impl XlsxRows {
    fn open(path: &Path) -> AppResult<(Vec<String>, XlsxRows)> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1024);
        let path = path.to_path_buf();
        std::thread::spawn(move || {
            if let Err(e) = stream(&path, &tx) {
                let _ = tx.send(Err(e));
            }
        });
        let mut rows = XlsxRows { rx };
        let headers = match rows.next_row()? {
            Some((_, h)) => h.iter().map(|s| clean_header(s)).collect(),
            None => return Err(bad("the worksheet is empty")),
        };
        Ok((headers, rows))
    }

    /// The next row's 1-based number and cells.
    fn next_row(&mut self) -> AppResult<Option<(u64, Vec<String>)>> {
        match self.rx.recv() {
            Ok(row) => row.map(Some),
            Err(_) => Ok(None),
        }
    }
}

/// Sends the first worksheet's rows (numbered from 1) until the receiver goes away.
fn stream(
    path: &Path,
    tx: &std::sync::mpsc::SyncSender<AppResult<(u64, Vec<String>)>>,
) -> AppResult<()> {
    let mut book: Xlsx<_> = calamine::open_workbook(path)
        .map_err(|e| bad(format!("not a readable .xlsx file: {e}")))?;
    let sheet = book
        .sheet_names()
        .first()
        .cloned()
        .ok_or_else(|| bad("the workbook has no worksheet"))?;
    let mut reader = book
        .worksheet_cells_reader(&sheet)
        .map_err(|e| bad(format!("cannot read worksheet {sheet}: {e}")))?;
    let mut current: Option<(u32, Vec<String>)> = None;
    while let Some(cell) = reader
        .next_cell()
        .map_err(|e| bad(format!("cannot read worksheet {sheet}: {e}")))?
    {
        let (r, c) = cell.get_position();
        let text = text_of(&Data::from(cell.get_value().clone()));
        if text.is_empty() {
            continue;
        }
        if current.as_ref().is_some_and(|(row, _)| *row != r) {
            let (row, cells) = current.take().expect("a row");
            if tx.send(Ok((u64::from(row) + 1, cells))).is_err() {
                return Ok(());
            }
        }
        let cells = &mut current.get_or_insert_with(|| (r, Vec::new())).1;
        let c = c as usize;
        if cells.len() <= c {
            cells.resize(c + 1, String::new());
        }
        cells[c] = text;
    }
    if let Some((row, cells)) = current {
        let _ = tx.send(Ok((u64::from(row) + 1, cells)));
    }
    Ok(())
}

/// A cell as text: numbers without a trailing `.0`, dates as Excel serial numbers.
fn text_of(d: &Data) -> String {
    match d {
        Data::Empty => String::new(),
        Data::String(s) => s.clone(),
        Data::Int(i) => i.to_string(),
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
        Data::Float(f) => f.to_string(),
        Data::Bool(b) => b.to_string(),
        // An Excel serial day number; the importer reads it in the shop's zone.
        Data::DateTime(dt) => dt.as_f64().to_string(),
        Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
        Data::Error(e) => format!("#{e:?}"),
    }
}
