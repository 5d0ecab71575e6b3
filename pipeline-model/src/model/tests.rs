use serde_json::json;

use super::*;

#[test]
fn placeholders_inside_quotes_are_refused() {
    let specs = vec![ParamSpec {
        name: "s".into(),
        kind: ParamType::String,
        default: None,
        description: String::new(),
        allowed: None,
    }];
    let values = BTreeMap::from([("s".to_owned(), Value::from("x OR 1=1 --"))]);
    assert!(render_sql("SELECT '{{ s }}'", &specs, &values).is_err());
    assert!(render_sql("SELECT \"{{ s }}\"", &specs, &values).is_err());
    assert_eq!(
        render_sql("SELECT 'a''b', {{ s }} -- 'x\n", &specs, &values).unwrap(),
        "SELECT 'a''b', 'x OR 1=1 --' -- 'x\n"
    );
}

#[test]
fn quotes_inside_comments_open_nothing() {
    // Read as the parser reads it: the quote is part of a comment, so the
    // placeholder after it is code and renders as a literal.
    let specs = vec![ParamSpec {
        name: "s".into(),
        kind: ParamType::String,
        default: None,
        description: String::new(),
        allowed: None,
    }];
    let values = BTreeMap::from([("s".to_owned(), Value::from("x"))]);
    assert_eq!(
        render_sql("SELECT /* ' */ {{ s }}", &specs, &values).unwrap(),
        "SELECT /* ' */ 'x'"
    );
    // A `;` inside a block comment ends no statement.
    let file = "CREATE TABLE a AS SELECT 1 /* ; */ AS n;\nCREATE TABLE b AS SELECT n FROM a;";
    let definition = PipelineDefinition::from_sql_file(file).unwrap();
    assert_eq!(definition.steps.len(), 2);
}

fn step(name: &str, sql: &str) -> Step {
    Step {
        name: name.into(),
        sql: sql.into(),
        materialization: Materialization::Table,
        description: String::new(),
        policy: StepPolicy::default(),
        source_line: None,
        source_column: None,
        checks: Vec::new(),
    }
}

fn not_null(name: &str, column: &str, blocking: bool) -> StepCheck {
    StepCheck {
        check: serde_json::from_value(
            json!({ "name": name, "type": "not_null", "column": column }),
        )
        .unwrap(),
        blocking,
    }
}

fn param(name: &str, kind: ParamType, default: Option<Value>) -> ParamSpec {
    ParamSpec {
        name: name.into(),
        kind,
        default,
        description: String::new(),
        allowed: None,
    }
}

fn pipeline(params: Vec<ParamSpec>, steps: Vec<Step>) -> PipelineDefinition {
    PipelineDefinition {
        description: String::new(),
        params,
        steps,
        defaults: StepPolicy::default(),
        max_parallel: None,
        schedule: None,
        triggers: Vec::new(),
        template: false,
        layout: BTreeMap::new(),
    }
}

fn codes(diagnostics: &[Diagnostic]) -> Vec<&str> {
    diagnostics.iter().map(|d| d.code.as_str()).collect()
}

fn clear_positions(definition: &mut PipelineDefinition) {
    for step in &mut definition.steps {
        step.source_line = None;
        step.source_column = None;
    }
}

/// A definition using every feature the `.sql` format can hold.
fn full_definition() -> PipelineDefinition {
    PipelineDefinition {
        description: "Daily sales\nfrom raw orders".into(),
        params: vec![
            ParamSpec {
                description: "The day to load".into(),
                ..param("day", ParamType::Date, Some(json!("2024-01-01")))
            },
            ParamSpec {
                allowed: Some(vec![json!("eu"), json!("it's")]),
                ..param("region", ParamType::String, None)
            },
            param("lag", ParamType::Integer, Some(json!(-5))),
            param("ratio", ParamType::Number, Some(json!(0.5))),
            param("full", ParamType::Boolean, Some(json!(true))),
            param("since", ParamType::Timestamp, None),
            param("col", ParamType::Identifier, Some(json!("amount"))),
        ],
        steps: vec![
            Step {
                materialization: Materialization::Incremental(Incremental::Append {
                    cursor: "updated_at".into(),
                }),
                description: "Cleaned orders".into(),
                policy: StepPolicy {
                    retries: Some(3),
                    backoff_ms: Some(250),
                    timeout_secs: None,
                },
                checks: vec![
                    not_null("ids_present", "id", true),
                    not_null("days_present", "day", false),
                ],
                ..step(
                    "orders_clean",
                    "SELECT * FROM raw_orders\nWHERE day = {{ day }} AND note <> 'a;b' -- trailing; comment",
                )
            },
            Step {
                materialization: Materialization::Incremental(Incremental::Merge {
                    unique_key: vec!["id".into(), "day".into()],
                }),
                ..step(
                    "orders_daily",
                    "SELECT id, day, count(*) AS n\nFROM orders_clean\nGROUP BY id, day",
                )
            },
            Step {
                materialization: Materialization::View,
                description: "Per day\nand more".into(),
                ..step("summary", "SELECT * FROM orders_daily /* a ; comment */")
            },
            Step {
                materialization: Materialization::Ephemeral,
                policy: StepPolicy {
                    retries: None,
                    backoff_ms: None,
                    timeout_secs: Some(30),
                },
                ..step("helper", "WITH x AS (SELECT 1 AS \"a;b\") SELECT * FROM x")
            },
            Step {
                checks: vec![not_null("total_present", "total", true)],
                ..step("totals", "SELECT sum(n) AS total FROM summary")
            },
        ],
        defaults: StepPolicy {
            retries: Some(2),
            backoff_ms: Some(500),
            timeout_secs: Some(60),
        },
        max_parallel: Some(4),
        schedule: Some(Schedule {
            cron: "0 6 * * *".into(),
            timezone: "Europe/Berlin".into(),
            missed: MissedRuns::RunOnce,
            enabled: false,
        }),
        triggers: vec![
            Trigger {
                dataset: "raw_orders".into(),
            },
            Trigger {
                dataset: "raw_customers".into(),
            },
        ],
        template: true,
        layout: BTreeMap::new(),
    }
}

#[test]
fn a_sound_definition_has_no_shape_problems() {
    assert_eq!(full_definition().check_shape(), Vec::new());
}

#[test]
fn shape_problems_are_all_reported() {
    let mut definition = pipeline(
        vec![
            param("p", ParamType::Integer, Some(json!("x"))),
            param("p", ParamType::String, None),
            param("1x", ParamType::String, None),
        ],
        vec![
            step("Bad Name", "SELECT 1"),
            step("a", "SELECT 1"),
            step("a", "  "),
            Step {
                materialization: Materialization::Incremental(Incremental::Append {
                    cursor: " ".into(),
                }),
                policy: StepPolicy {
                    timeout_secs: Some(0),
                    ..StepPolicy::default()
                },
                ..step("b", "SELECT {{ p }}")
            },
            step("c", "SELECT 1\nWHERE {{ nope }}"),
        ],
    );
    definition
        .layout
        .insert("ghost".into(), Position { x: 0.0, y: 0.0 });
    definition.max_parallel = Some(0);
    let found = definition.check_shape();
    let codes = codes(&found);
    for code in [
        "invalid_param",
        "invalid_name",
        "duplicate_step",
        "invalid_definition",
        "unknown_param",
    ] {
        assert!(codes.contains(&code), "{code} missing from {found:?}");
    }
    // Default of the wrong type, duplicate name, name not an identifier.
    assert_eq!(codes.iter().filter(|c| **c == "invalid_param").count(), 3);
    let unknown = found.iter().find(|d| d.code == "unknown_param").unwrap();
    assert_eq!(unknown.step.as_deref(), Some("c"));
    assert_eq!((unknown.line, unknown.column), (Some(2), Some(7)));
    for needle in ["no SQL", "cursor", "timeout_secs", "ghost", "max_parallel"] {
        assert!(
            found.iter().any(|d| d.message.contains(needle)),
            "nothing about {needle} in {found:?}"
        );
    }
}

#[test]
fn templates_need_params() {
    let mut definition = pipeline(Vec::new(), vec![step("a", "SELECT 1")]);
    definition.template = true;
    assert_eq!(codes(&definition.check_shape()), ["invalid_definition"]);
}

#[test]
fn unknown_params_point_into_the_file() {
    let definition = pipeline(
        Vec::new(),
        vec![Step {
            source_line: Some(10),
            source_column: Some(5),
            ..step("a", "SELECT {{ x }}")
        }],
    );
    let found = definition.check_shape();
    assert_eq!(codes(&found), ["unknown_param"]);
    assert_eq!((found[0].line, found[0].column), (Some(10), Some(12)));
}

#[test]
fn placeholders_are_found_with_positions() {
    let sql = "SELECT {{a}}, {{  b_2 }}\n  , '{{ not a name }}', {{c}";
    let found = placeholders(sql);
    assert_eq!(
        found,
        [
            Placeholder {
                name: "a".into(),
                start: 7,
                end: 12,
                line: 1,
                column: 8,
            },
            Placeholder {
                name: "b_2".into(),
                start: 14,
                end: 24,
                line: 1,
                column: 15,
            },
        ]
    );
    assert_eq!(&sql[found[1].start..found[1].end], "{{  b_2 }}");
    let on_second_line = placeholders("SELECT\n  é, {{ x }}");
    assert_eq!((on_second_line[0].line, on_second_line[0].column), (2, 6));
}

#[test]
fn params_resolve_to_given_values_and_defaults() {
    let specs = [
        param("day", ParamType::Date, Some(json!("2024-01-01"))),
        param("n", ParamType::Integer, None),
    ];
    let given = json!({ "n": 7 }).as_object().cloned().unwrap();
    let values = resolve_params(&specs, &given).unwrap();
    assert_eq!(values["day"], json!("2024-01-01"));
    assert_eq!(values["n"], json!(7));
}

#[test]
fn bad_params_are_refused_with_reasons() {
    let specs = [
        param("n", ParamType::Integer, None),
        ParamSpec {
            allowed: Some(vec![json!("eu"), json!("us")]),
            ..param("region", ParamType::String, Some(json!("eu")))
        },
    ];
    let refuse = |given: Value| {
        let given = given.as_object().cloned().unwrap();
        match resolve_params(&specs, &given) {
            Err(Error::InvalidInput(message)) => message,
            other => panic!("expected invalid input, got {other:?}"),
        }
    };
    let message = refuse(json!({ "n": 1, "zone": "x" }));
    assert!(
        message.contains("`zone`") && message.contains("`region`"),
        "{message}"
    );
    assert_eq!(refuse(json!({})), "param `n` is required");
    let message = refuse(json!({ "n": 1.5 }));
    assert!(
        message.contains("`n`") && message.contains("an integer"),
        "{message}"
    );
    let message = refuse(json!({ "n": 1, "region": "mars" }));
    assert!(message.contains("one of"), "{message}");

    for (kind, bad, good) in [
        (ParamType::String, json!(1), json!("x")),
        (ParamType::Number, json!("1"), json!(1.5)),
        (ParamType::Boolean, json!(1), json!(false)),
        (ParamType::Date, json!("2024-02-30"), json!("2024-02-29")),
        (
            ParamType::Timestamp,
            json!("2024-01-31 10:00"),
            json!("2024-01-31T10:00:00+01:00"),
        ),
        (ParamType::Identifier, json!("a b"), json!("_a1")),
    ] {
        let specs = [param("v", kind, None)];
        let given = |value: &Value| json!({ "v": value }).as_object().cloned().unwrap();
        assert!(
            resolve_params(&specs, &given(&bad)).is_err(),
            "{kind:?} {bad}"
        );
        assert!(
            resolve_params(&specs, &given(&good)).is_ok(),
            "{kind:?} {good}"
        );
    }
}

#[test]
fn values_render_as_typed_literals() {
    let specs = [
        param("s", ParamType::String, None),
        param("i", ParamType::Integer, None),
        param("neg", ParamType::Integer, None),
        param("f", ParamType::Number, None),
        param("b", ParamType::Boolean, None),
        param("d", ParamType::Date, None),
        param("t", ParamType::Timestamp, None),
        param("c", ParamType::Identifier, None),
    ];
    let values: BTreeMap<String, Value> = [
        ("s", json!("it's")),
        ("i", json!(42)),
        ("neg", json!(-3)),
        ("f", json!(2.5)),
        ("b", json!(true)),
        ("d", json!("2024-01-31")),
        ("t", json!("2024-01-31T11:00:00+01:00")),
        ("c", json!("amount")),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect();
    let sql = "SELECT {{s}}, {{ i }}, x-{{neg}}, {{f}}, {{b}}, {{d}}, {{t}}, {{c}}";
    assert_eq!(
        render_sql(sql, &specs, &values).unwrap(),
        "SELECT 'it''s', 42, x-(-3), 2.5, TRUE, DATE '2024-01-31', \
         TIMESTAMP '2024-01-31T10:00:00Z', \"amount\""
    );
}

#[test]
fn injection_renders_as_one_harmless_literal() {
    let specs = [param("name", ParamType::String, None)];
    let values = BTreeMap::from([("name".to_owned(), json!("x'; DROP TABLE t; --"))]);
    let rendered = render_sql("SELECT * FROM t WHERE name = {{ name }}", &specs, &values).unwrap();
    assert_eq!(
        rendered,
        "SELECT * FROM t WHERE name = 'x''; DROP TABLE t; --'"
    );
    // Parsed, it is still one statement comparing with one string.
    let statements = datafusion::sql::parser::DFParser::parse_sql(&rendered).unwrap();
    assert_eq!(statements.len(), 1);
    assert!(
        statements[0]
            .to_string()
            .contains("'x''; DROP TABLE t; --'")
    );

    // An identifier cannot smuggle a quote either.
    let specs = [param("col", ParamType::Identifier, None)];
    let values = BTreeMap::from([("col".to_owned(), json!("a\" FROM secrets --"))]);
    assert!(render_sql("SELECT {{ col }} FROM t", &specs, &values).is_err());
}

#[test]
fn unknown_placeholders_do_not_render() {
    let err = render_sql("SELECT {{ x }}", &[], &BTreeMap::new()).unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)));
}

#[test]
fn validation_values_use_defaults_or_representatives() {
    let specs = [
        param("d", ParamType::Date, Some(json!("2024-05-01"))),
        param("s", ParamType::String, None),
        param("i", ParamType::Integer, None),
        param("b", ParamType::Boolean, None),
        param("t", ParamType::Timestamp, None),
        param("col", ParamType::Identifier, None),
    ];
    let values = placeholder_values_for_validation(&specs);
    assert_eq!(values["d"], json!("2024-05-01"));
    assert_eq!(values["s"], json!(""));
    assert_eq!(values["i"], json!(0));
    assert_eq!(values["b"], json!(false));
    assert_eq!(values["t"], json!("1970-01-01T00:00:00Z"));
    assert_eq!(values["col"], json!("col"));
    let sql = "SELECT {{ s }}, {{ i }}, {{ b }}, {{ d }}, {{ t }}, {{ col }}";
    render_sql(sql, &specs, &values).unwrap();
}

#[test]
fn instantiating_renders_every_step() {
    let mut template = pipeline(
        vec![param("day", ParamType::Date, None)],
        vec![
            step("a", "SELECT * FROM raw WHERE day = {{ day }}"),
            step("b", "SELECT * FROM a"),
        ],
    );
    template.template = true;
    let values = BTreeMap::from([("day".to_owned(), json!("2024-01-31"))]);
    let instance = template.instantiate(&values).unwrap();
    assert!(!instance.template);
    assert!(instance.params.is_empty());
    assert_eq!(
        instance.steps[0].sql,
        "SELECT * FROM raw WHERE day = DATE '2024-01-31'"
    );
    assert_eq!(instance.steps[1].sql, "SELECT * FROM a");
    assert!(template.instantiate(&BTreeMap::new()).is_err());
}

#[test]
fn content_hash_follows_content() {
    let a = full_definition();
    let hash = a.content_hash();
    assert_eq!(hash.len(), 64);
    assert!(
        hash.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    assert_eq!(hash, full_definition().content_hash());
    let mut b = full_definition();
    b.steps[4].sql.push(' ');
    assert_ne!(hash, b.content_hash());
}

#[test]
fn sql_files_read_steps_and_directives() {
    let file = "\
-- basin: description Daily sales from raw orders
-- basin: param day date default '2024-01-01'
-- basin: param region string
-- basin: retries 2
-- basin: schedule \"0 6 * * *\" timezone Europe/Berlin missed run_once
-- basin: trigger raw_orders

-- a plain comment
-- basin: retries 3
-- basin: incremental append cursor updated_at
CREATE OR REPLACE TABLE orders_clean AS
SELECT * FROM raw_orders WHERE region = {{ region }};

-- basin: incremental merge unique_key id, day
create table \"Daily\" as select 1;
CREATE VIEW v AS SELECT 'x;y' AS s;
CREATE  TEMP
  VIEW e AS   SELECT 2
";
    let definition = PipelineDefinition::from_sql_file(file).unwrap();
    assert_eq!(definition.description, "Daily sales from raw orders");
    assert_eq!(definition.params.len(), 2);
    assert_eq!(definition.params[0].default, Some(json!("2024-01-01")));
    assert_eq!(definition.params[1].kind, ParamType::String);
    assert_eq!(definition.params[1].default, None);
    assert_eq!(definition.defaults.retries, Some(2));
    let schedule = definition.schedule.as_ref().unwrap();
    assert_eq!(schedule.cron, "0 6 * * *");
    assert_eq!(schedule.timezone, "Europe/Berlin");
    assert_eq!(schedule.missed, MissedRuns::RunOnce);
    assert!(schedule.enabled);
    assert_eq!(definition.triggers[0].dataset, "raw_orders");

    let steps = &definition.steps;
    let names: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["orders_clean", "Daily", "v", "e"]);

    assert_eq!(
        steps[0].sql,
        "SELECT * FROM raw_orders WHERE region = {{ region }}"
    );
    assert_eq!(steps[0].policy.retries, Some(3));
    assert_eq!(
        steps[0].materialization,
        Materialization::Incremental(Incremental::Append {
            cursor: "updated_at".into()
        })
    );
    assert_eq!(
        (steps[0].source_line, steps[0].source_column),
        (Some(12), Some(1))
    );

    assert_eq!(steps[1].sql, "select 1");
    assert_eq!(
        steps[1].materialization,
        Materialization::Incremental(Incremental::Merge {
            unique_key: vec!["id".into(), "day".into()]
        })
    );
    assert_eq!(
        (steps[1].source_line, steps[1].source_column),
        (Some(15), Some(25))
    );

    assert_eq!(steps[2].sql, "SELECT 'x;y' AS s");
    assert_eq!(steps[2].materialization, Materialization::View);
    assert_eq!(steps[2].policy, StepPolicy::default());
    assert_eq!(
        (steps[2].source_line, steps[2].source_column),
        (Some(16), Some(18))
    );

    assert_eq!(steps[3].sql, "SELECT 2");
    assert_eq!(steps[3].materialization, Materialization::Ephemeral);
    assert_eq!(
        (steps[3].source_line, steps[3].source_column),
        (Some(18), Some(15))
    );
}

#[test]
fn sql_file_steps_can_carry_descriptions() {
    let file = "-- basin: description Orders without test data\nCREATE VIEW a AS SELECT 1";
    let definition = PipelineDefinition::from_sql_file(file).unwrap();
    assert!(definition.description.is_empty());
    assert_eq!(definition.steps[0].description, "Orders without test data");
}

#[test]
fn sql_file_problems_are_all_reported_with_positions() {
    let file = "\
-- basin: retries many
CREATE TABLE a AS SELECT 1;
INSERT INTO a VALUES (1);
-- basin: frobnicate
CREATE VIEW b AS SELECT 2;
-- basin: incremental append cursor x
CREATE VIEW c AS SELECT 3;

-- basin: incremental append cursor y

CREATE TABLE d AS SELECT 4;
";
    let found = PipelineDefinition::from_sql_file(file).unwrap_err();
    assert!(
        found.iter().all(|d| d.code == "invalid_definition"),
        "{found:?}"
    );
    let places: Vec<(Option<u64>, Option<u64>)> =
        found.iter().map(|d| (d.line, d.column)).collect();
    assert_eq!(
        places,
        [
            (Some(1), Some(1)),
            (Some(3), Some(1)),
            (Some(4), Some(1)),
            (Some(6), Some(1)),
            (Some(9), Some(1)),
        ],
        "{found:?}"
    );
}

#[test]
fn sql_files_round_trip() {
    let definition = full_definition();
    let file = definition.to_sql_file();
    let mut read = PipelineDefinition::from_sql_file(&file)
        .unwrap_or_else(|found| panic!("{found:?} in\n{file}"));
    assert!(read.steps.iter().all(|s| s.source_line.is_some()));
    clear_positions(&mut read);
    assert_eq!(read, definition, "\n{file}");
    // Writing what was read gives the same file.
    assert_eq!(read.to_sql_file(), file);
}

#[test]
fn visual_form_round_trips() {
    let definition = full_definition();
    let edges = [
        ("raw_orders".to_owned(), "orders_clean".to_owned()),
        ("orders_clean".to_owned(), "orders_daily".to_owned()),
        ("orders_daily".to_owned(), "summary".to_owned()),
        ("summary".to_owned(), "totals".to_owned()),
    ];
    let visual = definition.to_visual(&edges);
    assert_eq!(visual.nodes.len(), 6);
    let source = visual.nodes.iter().find(|n| n.id == "raw_orders").unwrap();
    assert_eq!(source.kind, VisualNodeKind::Source);
    assert!(source.step.is_none());
    assert_eq!(visual.edges.len(), 4);
    assert_eq!(visual.edges[0].from, "raw_orders");
    // Automatic positions do not overlap.
    let mut positions: Vec<(i64, i64)> = visual
        .nodes
        .iter()
        .map(|n| (n.position.x as i64, n.position.y as i64))
        .collect();
    positions.sort_unstable();
    positions.dedup();
    assert_eq!(positions.len(), visual.nodes.len());

    let mut expected = definition.clone();
    expected.layout = visual
        .nodes
        .iter()
        .filter(|n| n.kind == VisualNodeKind::Step)
        .map(|n| (n.id.clone(), n.position))
        .collect();
    let read = PipelineDefinition::from_visual(visual).unwrap();
    assert_eq!(read, expected);

    // A layout is kept as it is.
    let again = PipelineDefinition::from_visual(read.to_visual(&edges)).unwrap();
    assert_eq!(again, read);
}

#[test]
fn step_checks_read_from_json() {
    let definition: PipelineDefinition = serde_json::from_value(json!({
        "steps": [{
            "name": "orders",
            "sql": "SELECT 1 AS id",
            "checks": [
                { "name": "ids_present", "type": "not_null", "column": "id" },
                { "name": "ids_soft", "type": "not_null", "column": "id", "blocking": false },
            ],
        }],
    }))
    .unwrap();
    let checks = &definition.steps[0].checks;
    assert_eq!(checks.len(), 2);
    assert_eq!(checks[0], not_null("ids_present", "id", true));
    assert_eq!(checks[1], not_null("ids_soft", "id", false));

    // Blocking is the default, so only a warning-only check says so.
    let written = serde_json::to_value(checks).unwrap();
    assert_eq!(written[0]["type"], "not_null");
    assert!(written[0].get("blocking").is_none(), "{written}");
    assert_eq!(written[1]["blocking"], false);
    let step: Step = serde_json::from_value(json!({ "name": "a", "sql": "SELECT 1" })).unwrap();
    assert!(step.checks.is_empty());
    assert!(serde_json::to_value(&step).unwrap().get("checks").is_none());
}

#[test]
fn unknown_fields_inside_a_check_are_refused() {
    let refused = serde_json::from_value::<StepCheck>(json!({
        "name": "ids_present", "type": "not_null", "column": "id", "colour": "red",
    }));
    assert!(refused.is_err(), "{refused:?}");
    let refused = serde_json::from_value::<StepCheck>(json!({
        "name": "ids_present", "type": "no_such_check", "column": "id",
    }));
    assert!(refused.is_err(), "{refused:?}");
}

#[test]
fn checks_need_a_written_dataset_and_unique_names() {
    let definition = pipeline(
        Vec::new(),
        vec![
            Step {
                materialization: Materialization::View,
                checks: vec![not_null("ids_present", "id", true)],
                ..step("v", "SELECT 1 AS id")
            },
            Step {
                materialization: Materialization::Ephemeral,
                checks: vec![not_null("ids_present", "id", false)],
                ..step("e", "SELECT 1 AS id")
            },
            Step {
                checks: vec![
                    not_null("ids_present", "id", true),
                    not_null("ids_present", "id", false),
                ],
                ..step("t", "SELECT 1 AS id")
            },
        ],
    );
    let found = definition.check_shape();
    assert_eq!(
        codes(&found),
        [
            "checks_on_non_table",
            "checks_on_non_table",
            "duplicate_check"
        ],
        "{found:?}"
    );
    let steps: Vec<Option<&str>> = found.iter().map(|d| d.step.as_deref()).collect();
    assert_eq!(steps, [Some("v"), Some("e"), Some("t")]);
    assert!(found[0].message.contains("view"), "{found:?}");
}

#[test]
fn sql_file_checks_attach_to_their_table_step() {
    let file = "\
-- basin: check {\"name\": \"ids_present\", \"type\": \"not_null\", \"column\": \"id\"}
-- basin: check {\"name\": \"ids_soft\", \"type\": \"not_null\", \"column\": \"id\", \"blocking\": false}
CREATE TABLE a AS SELECT 1 AS id;
";
    let definition = PipelineDefinition::from_sql_file(file).unwrap();
    assert_eq!(
        definition.steps[0].checks,
        [
            not_null("ids_present", "id", true),
            not_null("ids_soft", "id", false),
        ]
    );
    let written = definition.to_sql_file();
    let check_lines: Vec<&str> = written
        .lines()
        .filter(|line| line.starts_with("-- basin: check {"))
        .collect();
    assert_eq!(check_lines.len(), 2, "{written}");
    assert!(!check_lines[0].contains("blocking"), "{written}");
    assert!(
        check_lines[1].ends_with(",\"blocking\":false}"),
        "{written}"
    );
    assert_eq!(
        PipelineDefinition::from_sql_file(&written).unwrap().steps[0].checks,
        definition.steps[0].checks
    );
}

#[test]
fn sql_file_checks_in_the_wrong_place_are_refused() {
    let file = "\
-- basin: check {\"name\": \"a\", \"type\": \"not_null\", \"column\": \"id\"}

-- basin: check {\"name\": \"b\", \"type\": \"not_null\", \"column\": \"id\"}
CREATE VIEW v AS SELECT 1 AS id;
-- basin: check {\"name\": \"c\", \"type\": \"not_null\"
CREATE TABLE t AS SELECT 1 AS id;
-- basin: check
CREATE TABLE u AS SELECT 1 AS id;
-- basin: check {\"name\": \"d\", \"type\": \"not_null\", \"column\": \"id\"}
-- basin: check {\"name\": \"d\", \"type\": \"not_null\", \"column\": \"id\"}
CREATE TABLE w AS SELECT 1 AS id;
";
    let found = PipelineDefinition::from_sql_file(file).unwrap_err();
    let lines: Vec<Option<u64>> = found.iter().map(|d| d.line).collect();
    assert_eq!(
        lines,
        [Some(1), Some(3), Some(5), Some(7), Some(10)],
        "{found:?}"
    );
    assert!(found[0].message.contains("directly above"), "{found:?}");
    assert!(found[1].message.contains("CREATE TABLE"), "{found:?}");
    assert!(found[2].message.starts_with("invalid check"), "{found:?}");
    assert!(found[4].message.contains("`d`"), "{found:?}");
}

#[test]
fn visual_nodes_must_carry_their_own_step() {
    let definition = pipeline(Vec::new(), vec![step("a", "SELECT 1")]);
    let mut visual = definition.to_visual(&[]);
    visual.nodes[0].id = "b".into();
    let found = PipelineDefinition::from_visual(visual).unwrap_err();
    assert_eq!(codes(&found), ["invalid_definition"]);
}
