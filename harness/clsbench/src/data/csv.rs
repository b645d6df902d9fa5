//! Reading CSV: RFC 4180 quoting with embedded newlines, a UTF-8 BOM, LF or CRLF line ends.
//! `CsvSource` is what every CSV reader of clsbench (suite data, `score`'s predictions) goes
//! through, so that they agree on line numbers and on what a header may be; every error names
//! the file and the line, and the column where there is one.

use super::RawRow;
use crate::error::{Error, Result};
use std::fmt;
use std::path::Path;

/// Where a record starts: its line in the file (1-based, counting the header and any
/// newlines inside quoted fields) and its position among the data rows (1-based).
#[derive(Debug, Clone, Copy)]
pub struct Loc {
    pub line: usize,
    pub row: usize,
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {} (data row {})", self.line, self.row)
    }
}

/// A CSV file held in memory, read record by record with the line each record starts on.
///
/// The lines are counted here, from the byte offsets of the records, and not taken from the
/// csv crate's `Position::line`: the crate stamps a record with the line count at the moment
/// it starts reading it, before it has consumed the `\n` of the previous record's `\r\n` (or
/// any blank lines in between), so its numbers run one low in CRLF files and after blank lines.
pub struct CsvSource<'a> {
    origin: &'a str,
    bytes: &'a [u8],
    /// Byte offsets of every line break (`\n`, `\r\n` counted once, a lone `\r`).
    breaks: Vec<usize>,
    rdr: csv::Reader<&'a [u8]>,
    header: Vec<String>,
    header_line: usize,
    rows: usize,
}

impl<'a> CsvSource<'a> {
    /// Parse the header of `bytes`; `origin` names the source in errors.
    pub fn new(bytes: &'a [u8], origin: &'a str) -> Result<Self> {
        // The BOM is stripped here rather than by the csv crate so that the crate's byte
        // offsets are offsets into `bytes`.
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        let breaks = bytes
            .iter()
            .enumerate()
            .filter(|&(i, &b)| b == b'\n' || (b == b'\r' && bytes.get(i + 1) != Some(&b'\n')))
            .map(|(i, _)| i)
            .collect();
        let rdr = csv::ReaderBuilder::new().flexible(false).from_reader(bytes);
        let mut src = CsvSource {
            origin,
            bytes,
            breaks,
            rdr,
            header: Vec::new(),
            header_line: 1,
            rows: 0,
        };
        let headers = match src.rdr.byte_headers() {
            Ok(h) => h.clone(),
            Err(e) => return Err(src.csv_error(e)),
        };
        src.header_line = headers.position().map_or(1, |p| src.line_at(p.byte()));
        src.header = headers
            .iter()
            .map(|h| String::from_utf8_lossy(h).trim().to_string())
            .collect();
        Ok(src)
    }

    pub fn origin(&self) -> &str {
        self.origin
    }

    /// The header's names, trimmed.
    pub fn header(&self) -> &[String] {
        &self.header
    }

    pub fn header_line(&self) -> usize {
        self.header_line
    }

    /// The line of the record that starts at byte `offset`: records never start with a line
    /// break, so the breaks the csv crate has not consumed yet are skipped first.
    fn line_at(&self, offset: u64) -> usize {
        let mut at = usize::try_from(offset).unwrap_or(usize::MAX).min(self.bytes.len());
        while matches!(self.bytes.get(at), Some(b'\r' | b'\n')) {
            at += 1;
        }
        1 + self.breaks.partition_point(|&b| b < at)
    }

    fn csv_error(&self, e: csv::Error) -> Error {
        let line = e.position().map_or(self.header_line, |p| self.line_at(p.byte()));
        let what = match e.kind() {
            csv::ErrorKind::UnequalLengths { expected_len, len, .. } => format!(
                "{len} field(s), but the header has {expected_len}; quote fields that contain commas \
                 (\"a, b\") and double the quotes inside them"
            ),
            _ => format!("malformed CSV: {e}"),
        };
        Error::bad_input(format!("{}: line {line}: {what}", self.origin))
    }

    /// The index of column `name`; a name the header has twice is refused, as either reading
    /// of it would be a guess.
    pub fn column(&self, name: &str) -> Result<Option<usize>> {
        let at: Vec<usize> = (0..self.header.len()).filter(|&i| self.header[i] == name).collect();
        match at.as_slice() {
            [] => Ok(None),
            [i] => Ok(Some(*i)),
            _ => Err(Error::bad_input(format!(
                "{}: line {}: column {name:?} appears {} times in the header (columns {}); rename or remove all but one",
                self.origin,
                self.header_line,
                at.len(),
                at.iter().map(|i| (i + 1).to_string()).collect::<Vec<_>>().join(", ")
            ))),
        }
    }

    /// As `column`, but a missing column is an error listing the header.
    pub fn require(&self, name: &str) -> Result<usize> {
        self.column(name)?.ok_or_else(|| {
            Error::bad_input(format!(
                "{}: line {}: no column {name:?}; the header has {}",
                self.origin,
                self.header_line,
                self.header.join(", ")
            ))
        })
    }

    /// Refuse a header in which any name occurs twice (where every column is read).
    pub fn require_unique_names(&self) -> Result<()> {
        for name in &self.header {
            self.column(name)?;
        }
        Ok(())
    }

    /// The next data record into `record`, and where it starts; `None` at the end.
    pub fn next_record(&mut self, record: &mut csv::ByteRecord) -> Result<Option<Loc>> {
        match self.rdr.read_byte_record(record) {
            Ok(false) => Ok(None),
            Ok(true) => {
                self.rows += 1;
                let line = record.position().map_or(0, |p| self.line_at(p.byte()));
                Ok(Some(Loc { line, row: self.rows }))
            }
            Err(e) => Err(self.csv_error(e)),
        }
    }

    /// Field `at` of `record` (read at `loc`) as text, named by its header in errors.
    pub fn field<'r>(&self, record: &'r csv::ByteRecord, at: usize, loc: Loc) -> Result<&'r str> {
        let bytes = record.get(at).unwrap_or_default();
        std::str::from_utf8(bytes).map_err(|e| {
            Error::bad_input(format!(
                "{}: {loc}: column {:?} is not valid UTF-8 (byte {} of the field)",
                self.origin,
                self.header.get(at).map_or("", String::as_str),
                e.valid_up_to()
            ))
        })
    }

    /// As `field`, trimmed, and refused when blank; `expected` says what belongs there.
    pub fn non_blank<'r>(&self, record: &'r csv::ByteRecord, at: usize, loc: Loc, expected: &str) -> Result<&'r str> {
        let value = self.field(record, at, loc)?.trim();
        if value.is_empty() {
            return Err(Error::bad_input(format!(
                "{}: {loc}: column {:?} is empty; expected {expected}",
                self.origin, self.header[at]
            )));
        }
        Ok(value)
    }
}

/// Which columns hold what.
pub struct Columns<'a> {
    pub text: &'a str,
    pub label: &'a str,
    pub id: Option<&'a str>,
}

/// Read every data row of `path`. Rows keep their 0-based position (`index`), which is what
/// canonical index files refer to.
pub fn read_rows(path: &Path, cols: &Columns) -> Result<Vec<RawRow>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    read_rows_from(&bytes, &path.display().to_string(), cols)
}

/// As `read_rows`, from bytes; `origin` names the source in errors.
pub fn read_rows_from(bytes: &[u8], origin: &str, cols: &Columns) -> Result<Vec<RawRow>> {
    // Fields are read as bytes so that invalid UTF-8 is reported with its line and column
    // instead of as an opaque decoding error.
    let mut src = CsvSource::new(bytes, origin)?;
    let text_at = src.require(cols.text)?;
    let label_at = src.require(cols.label)?;
    let id_at = cols.id.map(|name| src.require(name)).transpose()?;

    let mut rows = Vec::new();
    let mut record = csv::ByteRecord::new();
    while let Some(loc) = src.next_record(&mut record)? {
        let index = rows.len();
        // Texts and ids keep their own whitespace; only blank ones are refused.
        src.non_blank(&record, text_at, loc, "a document")?;
        let text = src.field(&record, text_at, loc)?;
        let label = src.non_blank(&record, label_at, loc, "a label")?.to_string();
        let id = match id_at {
            Some(at) => {
                src.non_blank(&record, at, loc, "a document id")?;
                src.field(&record, at, loc)?.to_string()
            }
            None => index.to_string(),
        };
        rows.push(RawRow {
            index,
            id,
            text: text.to_string(),
            label,
            line: loc.line,
        });
    }
    Ok(rows)
}

/// Generators shared by the property tests of the CSV readers (here and `score`'s).
#[cfg(test)]
pub(crate) mod testgen {
    use proptest::prelude::*;

    /// Cases per property: enough to hit quoting, CRLF and mutation corners, and fast on 2 cores.
    pub const CASES: u32 = 256;

    /// A field's content, drawn from the pieces that make CSV hard: commas, quotes, both
    /// newline kinds, spaces, non-ASCII text.
    pub fn content() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop::sample::select(vec!["a", "Zz", "é", " ", ",", "\"", "\n", "\r\n", "x y", "1"]),
            0..4,
        )
        .prop_map(|parts| parts.concat())
    }

    /// As `content`, with a letter in it (never blank).
    pub fn non_blank() -> impl Strategy<Value = String> {
        (content(), "[a-z]{1,3}", content()).prop_map(|(a, b, c)| format!("{a}{b}{c}"))
    }

    /// A field as RFC 4180 writes it: quoted (quotes doubled) when it needs to be.
    pub fn quoted(field: &str) -> String {
        if field.contains([',', '"', '\r', '\n']) || field.starts_with(' ') || field.ends_with(' ') {
            format!("\"{}\"", field.replace('"', "\"\""))
        } else {
            field.to_string()
        }
    }

    /// One CSV record with its line end.
    pub fn record(fields: &[&str], crlf: bool) -> String {
        let line: Vec<String> = fields.iter().map(|f| quoted(f)).collect();
        format!("{}{}", line.join(","), if crlf { "\r\n" } else { "\n" })
    }

    /// The 1-based line on which byte `offset` of `text` lies, counting `\n` only (the
    /// generators make no lone `\r`).
    pub fn line_of(text: &str, offset: usize) -> usize {
        1 + text.as_bytes()[..offset].iter().filter(|&&b| b == b'\n').count()
    }

    /// Insert, delete or replace bytes, each with a byte that matters to CSV.
    #[derive(Debug, Clone)]
    pub enum Mutation {
        Insert(usize, u8),
        Delete(usize),
        Replace(usize, u8),
    }

    pub fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
        let byte = prop::sample::select(vec![b',', b'"', b'\r', b'\n', b' ', b'a', 0xff, 0xef, 0x00]);
        let one = prop_oneof![
            (any::<usize>(), byte.clone()).prop_map(|(at, b)| Mutation::Insert(at, b)),
            any::<usize>().prop_map(Mutation::Delete),
            (any::<usize>(), byte).prop_map(|(at, b)| Mutation::Replace(at, b)),
        ];
        prop::collection::vec(one, 1..4)
    }

    pub fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
        for m in mutations {
            let n = bytes.len();
            match *m {
                Mutation::Insert(at, b) => bytes.insert(at % (n + 1), b),
                Mutation::Delete(at) if n > 0 => {
                    bytes.remove(at % n);
                }
                Mutation::Replace(at, b) if n > 0 => bytes[at % n] = b,
                _ => {}
            }
        }
        bytes
    }

    /// Every error of a reader names where: a line, or a column.
    pub fn names_a_line_or_column(message: &str) -> bool {
        message.contains("line ") || message.contains("column ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COLS: Columns = Columns {
        text: "text",
        label: "label",
        id: None,
    };

    fn read(bytes: &[u8]) -> Result<Vec<RawRow>> {
        read_rows_from(bytes, "test.csv", &COLS)
    }

    #[test]
    fn quoted_fields_with_embedded_newlines_and_quotes() {
        let rows = read(b"text,label\n\"line one\nline \"\"two\"\"\",a\nplain,b\n").unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].text, "line one\nline \"two\"");
        assert_eq!(rows[1].label, "b");
        assert_eq!(rows[1].line, 4, "line numbers count the embedded newline");
    }

    #[test]
    fn bom_and_crlf_are_accepted() {
        let rows = read(b"\xEF\xBB\xBFtext,label\r\nhello,x\r\nworld,y\r\n").unwrap();
        assert_eq!(rows.iter().map(|r| r.label.as_str()).collect::<Vec<_>>(), ["x", "y"]);
        assert_eq!(rows[0].text, "hello");
    }

    #[test]
    fn missing_column_lists_the_header() {
        let err = read(b"body,label\nhi,a\n").unwrap_err().to_string();
        assert!(
            err.contains("test.csv") && err.contains("\"text\"") && err.contains("body, label"),
            "{err}"
        );
    }

    #[test]
    fn empty_text_names_the_line() {
        let err = read(b"text,label\nok,a\n  ,b\n").unwrap_err().to_string();
        assert!(err.contains("line 3") && err.contains("empty"), "{err}");
    }

    #[test]
    fn non_utf8_names_the_row() {
        let err = read(b"text,label\nok,a\nbad \xff byte,b\n").unwrap_err().to_string();
        assert!(
            err.contains("line 3") && err.contains("data row 2") && err.contains("UTF-8"),
            "{err}"
        );
    }

    #[test]
    fn ragged_row_is_an_error_with_its_line() {
        let err = read(b"text,label\nok,a\ntoo,many,fields\n").unwrap_err().to_string();
        assert!(err.contains("line 3"), "{err}");
    }

    /// Files whose line 5 holds the row under test (`row`): LF, CRLF, a blank line, and quoted
    /// fields with embedded LF and CRLF newlines before it.
    fn line_five_cases(row: &str) -> Vec<(&'static str, String)> {
        vec![
            ("LF", format!("text,label\na,x\nb,y\nc,z\n{row}\nd,w\n")),
            ("CRLF", format!("text,label\r\na,x\r\nb,y\r\nc,z\r\n{row}\r\nd,w\r\n")),
            ("LF, blank line", format!("text,label\n\na,x\nb,y\n{row}\n")),
            ("CRLF, blank line", format!("text,label\r\n\r\na,x\r\nb,y\r\n{row}\r\n")),
            ("quoted LF", format!("text,label\n\"two\nlines\",x\nb,y\n{row}\n")),
            (
                "quoted CRLF",
                format!("text,label\r\n\"two\r\nlines\",x\r\nb,y\r\n{row}\r\n"),
            ),
            (
                "BOM, quoted CRLF",
                format!("\u{FEFF}text,label\r\na,x\r\n\"b\r\n\",y\r\n{row}\r\n"),
            ),
        ]
    }

    #[test]
    fn an_empty_text_on_line_5_is_reported_as_line_5_in_lf_crlf_and_quoted_files() {
        for (case, file) in line_five_cases("  ,b") {
            let err = read(file.as_bytes()).unwrap_err().to_string();
            assert!(
                err.contains("line 5 ") && err.contains("\"text\" is empty"),
                "{case}: {err}"
            );
        }
        for (case, file) in line_five_cases("here,b") {
            let rows = read(file.as_bytes()).unwrap();
            let row = rows.iter().find(|r| r.text == "here").unwrap();
            assert_eq!(row.line, 5, "{case}");
        }
    }

    #[test]
    fn a_ragged_row_on_line_5_is_reported_as_line_5_in_lf_crlf_and_quoted_files() {
        for (case, file) in line_five_cases("too,many,fields") {
            let err = read(file.as_bytes()).unwrap_err().to_string();
            assert!(
                err.contains("line 5:") && err.contains("3 field(s), but the header has 2"),
                "{case}: {err}"
            );
        }
    }

    #[test]
    fn a_duplicate_header_column_is_refused() {
        let err = read(b"text,label,text\na,x,b\n").unwrap_err().to_string();
        assert!(
            err.contains("line 1") && err.contains("\"text\" appears 2 times") && err.contains("columns 1, 3"),
            "{err}"
        );
        // Columns that are not read may repeat.
        assert_eq!(read(b"text,note,label,note\na,1,x,2\n").unwrap().len(), 1);
    }

    #[test]
    fn a_blank_id_is_refused_with_its_line() {
        let cols = Columns { id: Some("id"), ..COLS };
        let err = read_rows_from(b"id,text,label\r\n7,a,x\r\n  ,b,y\r\n", "test.csv", &cols)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("test.csv: line 3 (data row 2)") && err.contains("\"id\" is empty"),
            "{err}"
        );
    }

    #[test]
    fn ids_default_to_row_numbers() {
        let rows = read(b"text,label\na,x\nb,y\n").unwrap();
        assert_eq!((rows[0].id.as_str(), rows[1].id.as_str()), ("0", "1"));
    }

    mod properties {
        use super::super::testgen::*;
        use super::*;
        use proptest::prelude::*;

        const COLS_WITH_ID: Columns = Columns {
            text: "text",
            label: "label",
            id: Some("id"),
        };

        fn check_error(e: Error) -> std::result::Result<(), TestCaseError> {
            prop_assert!(matches!(e, Error::BadInput(_)), "{e:?}");
            let msg = e.to_string();
            prop_assert!(msg.starts_with("test.csv: "), "{msg}");
            prop_assert!(names_a_line_or_column(&msg), "{msg}");
            Ok(())
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(CASES))]

            #[test]
            fn arbitrary_bytes_never_panic_and_errors_name_a_line(
                header in prop::sample::select(vec!["", "text,label\n", "id,text,label\r\n", "text,text\n"]),
                body in prop::collection::vec(any::<u8>(), 0..300),
            ) {
                let mut input = header.as_bytes().to_vec();
                input.extend(body);
                for cols in [&COLS, &COLS_WITH_ID] {
                    if let Err(e) = read_rows_from(&input, "test.csv", cols) {
                        check_error(e)?;
                    }
                }
            }

            #[test]
            fn valid_files_read_back_with_the_file_line_of_every_row(
                rows in prop::collection::vec((non_blank(), non_blank(), non_blank()), 1..10),
                crlf in any::<bool>(),
                bom in any::<bool>(),
                blank_lines in prop::collection::vec(any::<bool>(), 10),
            ) {
                let mut file = String::from(if bom { "\u{FEFF}" } else { "" });
                file += &record(&["id", "text", "label"], crlf);
                let mut starts = Vec::new();
                for (i, (id, text, label)) in rows.iter().enumerate() {
                    if blank_lines[i] {
                        file += if crlf { "\r\n" } else { "\n" };
                    }
                    starts.push(file.len());
                    file += &record(&[id.as_str(), text.as_str(), label.as_str()], crlf);
                }
                let got = read_rows_from(file.as_bytes(), "test.csv", &COLS_WITH_ID).unwrap();
                prop_assert_eq!(got.len(), rows.len());
                for ((row, (id, text, label)), &start) in got.iter().zip(&rows).zip(&starts) {
                    prop_assert_eq!(&row.id, id);
                    prop_assert_eq!(&row.text, text);
                    prop_assert_eq!(&row.label, label.trim());
                    prop_assert_eq!(row.line, line_of(&file, start));
                }
            }

            #[test]
            fn a_blank_field_is_reported_on_its_file_line(
                rows in prop::collection::vec((non_blank(), non_blank(), non_blank()), 1..10),
                crlf in any::<bool>(),
                which in any::<prop::sample::Index>(),
                column in 0usize..3,
                blank in prop::sample::select(vec!["", " ", "  \t"]),
            ) {
                let k = which.index(rows.len());
                let names = ["id", "text", "label"];
                let mut file = record(&names, crlf);
                let mut start = 0;
                for (i, (id, text, label)) in rows.iter().enumerate() {
                    let mut fields = [id.as_str(), text.as_str(), label.as_str()];
                    if i == k {
                        fields[column] = blank;
                        start = file.len();
                    }
                    file += &record(&fields, crlf);
                }
                let msg = read_rows_from(file.as_bytes(), "test.csv", &COLS_WITH_ID).unwrap_err().to_string();
                let want = format!("line {} (data row {}): column {:?} is empty", line_of(&file, start), k + 1, names[column]);
                prop_assert!(msg.contains(&want), "{} not in {}", want, msg);
            }

            #[test]
            fn mutated_files_never_panic_and_errors_name_a_line(
                rows in prop::collection::vec((non_blank(), non_blank(), content()), 0..8),
                crlf in any::<bool>(),
                mutations in mutations(),
            ) {
                let mut file = record(&["id", "text", "label"], crlf);
                for (id, text, label) in &rows {
                    file += &record(&[id.as_str(), text.as_str(), label.as_str()], crlf);
                }
                let bytes = mutate(file.into_bytes(), &mutations);
                let n_lines = 1 + bytes.iter().filter(|&&b| b == b'\n' || b == b'\r').count();
                match read_rows_from(&bytes, "test.csv", &COLS_WITH_ID) {
                    Ok(got) => {
                        for r in &got {
                            prop_assert!(r.line >= 2 && r.line <= n_lines, "line {} of {}", r.line, n_lines);
                        }
                    }
                    Err(e) => check_error(e)?,
                }
            }
        }
    }
}
