use super::*;

struct EmailOnly {
    columns: bool,
}

impl SessionMasker for EmailOnly {
    fn has_column_rules(&self) -> bool {
        self.columns
    }
    fn column_covered(&self, column: &ColumnSource) -> bool {
        column.column.as_deref() == Some("ssn")
    }
    fn scans_content(&self) -> bool {
        true
    }
    fn mask_text(&self, value: &str, covered: bool) -> Masked {
        if covered || value.contains('@') {
            Masked::Replaced {
                value: Some("[REDACTED]".into()),
                detector: Arc::from(if covered { "column" } else { "email" }),
            }
        } else {
            Masked::Unchanged
        }
    }
    fn unmaskable_as_null(&self) -> bool {
        true
    }
}

fn row_description(fields: &[(&str, u32, i16, u32, i16)]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&(fields.len() as i16).to_be_bytes());
    for (name, table, attnum, type_oid, format) in fields {
        body.extend_from_slice(name.as_bytes());
        body.push(0);
        body.extend_from_slice(&table.to_be_bytes());
        body.extend_from_slice(&attnum.to_be_bytes());
        body.extend_from_slice(&type_oid.to_be_bytes());
        body.extend_from_slice(&(-1i16).to_be_bytes());
        body.extend_from_slice(&(-1i32).to_be_bytes());
        body.extend_from_slice(&format.to_be_bytes());
    }
    body
}

fn data_row(values: &[Option<&[u8]>]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&(values.len() as i16).to_be_bytes());
    for value in values {
        match value {
            Some(v) => {
                body.extend_from_slice(&(v.len() as i32).to_be_bytes());
                body.extend_from_slice(v);
            }
            None => body.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }
    body
}

#[test]
fn rewrites_only_matching_values_and_keeps_framing() {
    let masker = EmailOnly { columns: true };
    let fields = parse_row_description(&row_description(&[
        ("id", 1, 1, 23, 1),
        ("email", 1, 2, 25, 0),
        ("ssn", 1, 3, 25, 0),
        ("note", 0, 0, 25, 0),
    ]))
    .unwrap();
    let sources = |f: &FieldDescription| {
        Some(ColumnSource {
            column: Some(f.name.clone()),
            label: f.name.clone(),
            ..ColumnSource::default()
        })
    };
    let plan = RowPlan::build(&masker, &fields, &sources).unwrap().unwrap();
    let body = data_row(&[
        Some(&7i32.to_be_bytes()),
        Some(b"bob@example.com"),
        Some(b"123-45-6789"),
        None,
    ]);
    let mut counts = MaskCounts::new();
    let frame = mask_data_row(&masker, &plan, &body, &mut counts)
        .unwrap()
        .unwrap();
    let expected = data_row(&[
        Some(&7i32.to_be_bytes()),
        Some(b"[REDACTED]"),
        Some(b"[REDACTED]"),
        None,
    ]);
    assert_eq!(frame[0], b'D');
    assert_eq!(
        u32::from_be_bytes([frame[1], frame[2], frame[3], frame[4]]) as usize,
        frame.len() - 1
    );
    assert_eq!(&frame[5..], &expected[..]);
    assert_eq!(counts.len(), 2);

    let clean = data_row(&[Some(&1i32.to_be_bytes()), Some(b"none"), None, None]);
    let plan = RowPlan::build(&EmailOnly { columns: false }, &fields, &sources)
        .unwrap()
        .unwrap();
    assert!(
        mask_data_row(&masker, &plan, &clean, &mut counts)
            .unwrap()
            .is_none()
    );
}

#[test]
fn malformed_frames_never_panic() {
    let masker = EmailOnly { columns: false };
    assert!(parse_row_description(b"\x00\x05abc").is_none());
    let fields = vec![FieldDescription {
        name: "e".into(),
        table_oid: 0,
        attnum: 0,
        type_oid: 25,
        format: 0,
    }];
    let plan = RowPlan::build(&masker, &fields, &|_| None)
        .unwrap()
        .unwrap();
    let mut counts = MaskCounts::new();
    for body in [
        &b""[..],
        b"\x00",
        b"\x00\x01\x00\x00\x00\x09ab",
        b"\x00\x01\xff\xff",
    ] {
        assert!(
            mask_data_row(&masker, &plan, body, &mut counts)
                .unwrap()
                .is_none()
        );
    }
}

#[test]
fn error_details_are_masked() {
    let masker = EmailOnly { columns: false };
    let body =
        b"SERROR\0C23505\0Mduplicate key\0DKey (email)=(bob@example.com) already exists.\0\0";
    let out = mask_error_fields(&masker, b'E', body, None).unwrap();
    let text = String::from_utf8_lossy(&out);
    assert!(!text.contains("bob@example.com"));
    assert!(text.contains("23505"));
    assert!(mask_error_fields(&masker, b'E', b"SERROR\0Mfine\0\0", None).is_none());
}

#[test]
fn under_column_rules_only_data_free_messages_pass() {
    let masker = EmailOnly { columns: true };
    let kept = |body: &[u8], statement: Option<&str>| {
        let out = mask_error_fields(&masker, b'E', body, statement)
            .map(|out| String::from_utf8_lossy(&out).into_owned())
            .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
        !out.contains("withheld")
    };
    let typo = b"SERROR\0C42P01\0Mrelation \"no_such\" does not exist\0P15\0\0";
    assert!(kept(typo, Some("select * from NO_SUCH")));
    // The same message without a position, or quoting what the statement
    // does not contain (a value cast to regclass), is withheld.
    let runtime = b"SERROR\0C42P01\0Mrelation \"topsecret\" does not exist\0\0";
    assert!(!kept(runtime, Some("select code::regclass from s")));
    let regtype = b"SERROR\0C42601\0Msyntax error at or near \"-\"\0P8\0\0";
    assert!(!kept(regtype, Some("select code::regtype from s")));
    let unpaired = b"SERROR\0C42P01\0Mrelation \"a\"b\" does not exist\0P15\0\0";
    assert!(!kept(unpaired, Some("select * from \"a\"\"b\" a b")));
    assert!(!kept(typo, None));
    // Fixed templates pass wherever they come from.
    let read_only = b"SERROR\0C25006\0Mcannot execute DELETE in a read-only transaction\0\0";
    assert!(kept(read_only, None));
}
