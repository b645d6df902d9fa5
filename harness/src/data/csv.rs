//! Reading labelled rows from CSV: RFC 4180 quoting with embedded newlines, a UTF-8 BOM,
//! CRLF line ends. Every error names the file, the line and the column.

use super::RawRow;
use crate::error::{Error, Result};
use std::path::Path;

/// Which columns hold what.
pub struct Columns<'a> {
    pub text: &'a str,
    pub label: &'a str,
    pub id: Option<&'a str>,
}

/// Read every data row of `path`. Rows keep their 0-based position (`index`), which is what
/// canonical index files refer to.
pub fn read_rows(path: &Path, cols: &Columns) -> Result<Vec<RawRow>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    read_rows_from(file, &path.display().to_string(), cols)
}

/// As `read_rows`, from any reader; `origin` names the source in errors.
pub fn read_rows_from<R: std::io::Read>(reader: R, origin: &str, cols: &Columns) -> Result<Vec<RawRow>> {
    // The csv crate strips a leading UTF-8 BOM and accepts CRLF; we read bytes so that
    // invalid UTF-8 is reported with its line instead of as an opaque decoding error.
    let mut rdr = csv::ReaderBuilder::new().flexible(false).from_reader(reader);
    let headers = rdr
        .byte_headers()
        .map_err(|e| Error::bad_input(format!("{origin}: cannot read the header line: {e}")))?
        .clone();
    let names: Vec<String> = headers
        .iter()
        .map(|h| String::from_utf8_lossy(h).trim().to_string())
        .collect();
    let find = |want: &str| -> Result<usize> {
        names.iter().position(|n| n == want).ok_or_else(|| {
            Error::bad_input(format!(
                "{origin}: no column {want:?}; the header has {}",
                names.join(", ")
            ))
        })
    };
    let text_at = find(cols.text)?;
    let label_at = find(cols.label)?;
    let id_at = cols.id.map(find).transpose()?;

    let mut rows = Vec::new();
    let mut record = csv::ByteRecord::new();
    loop {
        let more = rdr.read_byte_record(&mut record).map_err(|e| {
            let line = e.position().map(|p| p.line()).unwrap_or(0);
            Error::bad_input(format!("{origin}: line {line}: malformed CSV: {e}"))
        })?;
        if !more {
            break;
        }
        let index = rows.len();
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        let field = |at: usize, name: &str| -> Result<String> {
            let bytes = record.get(at).unwrap_or_default();
            String::from_utf8(bytes.to_vec()).map_err(|e| {
                Error::bad_input(format!(
                    "{origin}: line {line} (data row {}): column {name:?} is not valid UTF-8 (byte {} of the field)",
                    index + 1,
                    e.utf8_error().valid_up_to()
                ))
            })
        };
        let text = field(text_at, cols.text)?;
        if text.trim().is_empty() {
            return Err(Error::bad_input(format!(
                "{origin}: line {line} (data row {}): column {:?} is empty; expected a document",
                index + 1,
                cols.text
            )));
        }
        let label = field(label_at, cols.label)?.trim().to_string();
        if label.is_empty() {
            return Err(Error::bad_input(format!(
                "{origin}: line {line} (data row {}): column {:?} is empty; expected a label",
                index + 1,
                cols.label
            )));
        }
        let id = match (id_at, cols.id) {
            (Some(at), Some(name)) => field(at, name)?,
            _ => index.to_string(),
        };
        rows.push(RawRow {
            index,
            id,
            text,
            label,
            line: line as usize,
        });
    }
    Ok(rows)
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

    #[test]
    fn ids_default_to_row_numbers() {
        let rows = read(b"text,label\na,x\nb,y\n").unwrap();
        assert_eq!((rows[0].id.as_str(), rows[1].id.as_str()), ("0", "1"));
    }
}
