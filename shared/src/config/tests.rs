//! Layering and validation, each case in a figment `Jail` (its own temp dir and environment,
//! serialized with the other jailed tests so environment changes cannot leak between them).
#![expect(
    clippy::result_large_err,
    reason = "figment::Jail closures must return figment::Error, whose size is not ours to choose"
)]

use figment::Jail;

use super::*;

fn sources(jail: &Jail) -> Sources {
    Sources {
        config_dir: jail.directory().join("config"),
        config_dir_explicit: false,
        env_name: None,
        extra_file: None,
    }
}

fn load_err(sources: &Sources) -> String {
    Config::load(sources).unwrap_err().to_string()
}

#[test]
fn defaults_apply_when_no_file_exists() {
    Jail::expect_with(|jail| {
        let config = Config::load(&sources(jail)).unwrap();
        assert_eq!(config.sandbox.listen.port(), 12111);
        assert_eq!(config.sandbox.api_keys.len(), 1);
        assert_eq!(config.sandbox.api_keys[0].expose(), "sk_test_flint");
        assert_eq!(config.sandbox.idempotency_retention_secs, 86_400);
        assert!(!config.sandbox.faults.rate_limiter.enabled);
        Ok(())
    });
}

#[test]
fn layers_apply_in_order_base_env_file_extra_file_then_environment() {
    Jail::expect_with(|jail| {
        jail.create_dir("config")?;
        jail.create_file(
            "config/base.toml",
            "[sandbox]\nlisten = \"127.0.0.1:1001\"\nstripe_version = \"base\"\nidempotency_retention_secs = 11\n[log]\nlevel = \"warn\"",
        )?;
        jail.create_file(
            "config/test.toml",
            "[sandbox]\nlisten = \"127.0.0.1:1002\"\nstripe_version = \"env\"",
        )?;
        jail.create_file("extra.toml", "[sandbox]\nlisten = \"127.0.0.1:1003\"")?;
        jail.set_env("FLINT__SANDBOX__LISTEN", "127.0.0.1:1004");

        let mut src = sources(jail);
        src.env_name = Some("test".into());
        src.extra_file = Some(jail.directory().join("extra.toml"));
        let config = Config::load(&src).unwrap();
        assert_eq!(config.sandbox.listen.port(), 1004, "environment wins");
        assert_eq!(
            config.sandbox.stripe_version, "env",
            "FLINT_ENV overlay beats base"
        );
        assert_eq!(
            config.sandbox.idempotency_retention_secs, 11,
            "base beats defaults"
        );
        assert_eq!(config.log.level, "warn");

        jail.clear_env();
        assert_eq!(
            Config::load(&src).unwrap().sandbox.listen.port(),
            1003,
            "--config beats the overlay"
        );
        src.extra_file = None;
        assert_eq!(Config::load(&src).unwrap().sandbox.listen.port(), 1002);
        src.env_name = None;
        assert_eq!(Config::load(&src).unwrap().sandbox.listen.port(), 1001);
        Ok(())
    });
}

#[test]
fn environment_variables_reach_nested_keys_and_lists() {
    Jail::expect_with(|jail| {
        jail.set_env("FLINT__REDIS__URL", "redis://127.0.0.1:7777");
        jail.set_env("FLINT__SANDBOX__FAULTS__RATE_LIMITER__ENABLED", "true");
        jail.set_env(
            "FLINT__SANDBOX__API_KEYS",
            "[\"sk_test_aaaaaaaa\", \"sk_test_bbbbbbbb\"]",
        );
        let config = Config::load(&sources(jail)).unwrap();
        assert_eq!(config.redis.url.expose(), "redis://127.0.0.1:7777");
        assert!(config.sandbox.faults.rate_limiter.enabled);
        assert_eq!(config.sandbox.api_keys.len(), 2);
        Ok(())
    });
}

#[test]
fn unknown_keys_are_rejected_with_their_name() {
    Jail::expect_with(|jail| {
        jail.create_dir("config")?;
        jail.create_file(
            "config/base.toml",
            "[sandbox]\nlisten_addr = \"127.0.0.1:1\"",
        )?;
        let msg = load_err(&sources(jail));
        assert!(msg.contains("listen_addr"), "{msg}");

        jail.create_file("config/base.toml", "")?;
        jail.set_env("FLINT__REDIS__URLX", "redis://x");
        let msg = load_err(&sources(jail));
        assert!(msg.contains("urlx"), "{msg}");
        Ok(())
    });
}

#[test]
fn bad_values_name_the_key_and_the_reason() {
    Jail::expect_with(|jail| {
        jail.set_env("FLINT__SANDBOX__LISTEN", "not-an-address");
        let msg = load_err(&sources(jail));
        assert!(msg.contains("sandbox.listen"), "{msg}");
        assert!(msg.contains("FLINT__SANDBOX__LISTEN"), "{msg}");

        jail.clear_env();
        jail.set_env("FLINT__SANDBOX__IDEMPOTENCY_RETENTION_SECS", "-5");
        assert!(load_err(&sources(jail)).contains("idempotency_retention_secs"));

        jail.clear_env();
        jail.set_env("FLINT__SANDBOX__FAULTS__RATE_LIMIT_RATE", "1.5");
        let msg = load_err(&sources(jail));
        assert!(
            msg.contains("sandbox.faults.rate_limit_rate") && msg.contains("probability"),
            "{msg}"
        );

        jail.clear_env();
        jail.set_env("FLINT__SANDBOX__API_KEYS", "[\"sk_live_abcdefgh\"]");
        let msg = load_err(&sources(jail));
        assert!(
            msg.contains("sandbox.api_keys") && msg.contains("test key"),
            "{msg}"
        );
        assert!(
            !msg.contains("sk_live_abcdefgh"),
            "a key must never be echoed: {msg}"
        );

        jail.clear_env();
        jail.set_env("FLINT__REDIS__URL", "http://localhost");
        assert!(load_err(&sources(jail)).contains("redis.url"));

        jail.clear_env();
        jail.set_env("FLINT__REDIS__URL", "rediss://:hunter2@redis.example:6380");
        let msg = load_err(&sources(jail));
        assert!(msg.contains("redis.url") && msg.contains("TLS"), "{msg}");
        assert!(
            !msg.contains("hunter2"),
            "a password must never be echoed: {msg}"
        );

        jail.clear_env();
        jail.set_env("FLINT__WORKER__NAME", "pod/../x");
        assert!(load_err(&sources(jail)).contains("worker.name"));

        jail.clear_env();
        jail.set_env("FLINT__LOG__FORMAT", "xml");
        assert!(load_err(&sources(jail)).contains("log.format"));
        Ok(())
    });
}

#[test]
fn cluster_nodes_choose_cluster_mode_and_are_validated() {
    Jail::expect_with(|jail| {
        let config = Config::load(&sources(jail)).unwrap();
        assert_eq!(
            config.redis.target(),
            RedisTarget::Standalone("redis://127.0.0.1:6379".to_owned())
        );

        jail.set_env(
            "FLINT__REDIS__CLUSTER_NODES",
            "[redis://10.0.0.1:7000, redis://:pw@10.0.0.2:7001]",
        );
        let config = Config::load(&sources(jail)).unwrap();
        assert_eq!(
            config.redis.target(),
            RedisTarget::Cluster(vec![
                "redis://10.0.0.1:7000".to_owned(),
                "redis://:pw@10.0.0.2:7001".to_owned()
            ]),
            "cluster_nodes win; url is ignored"
        );

        for (bad, reason) in [
            ("[rediss://:hunter2@10.0.0.1:7000]", "TLS"),
            ("[http://10.0.0.1:7000]", "redis://"),
            ("[redis+unix:///tmp/redis.sock]", "redis://"),
            ("[redis://]", "redis://"),
        ] {
            jail.set_env("FLINT__REDIS__CLUSTER_NODES", bad);
            let msg = load_err(&sources(jail));
            assert!(
                msg.contains("redis.cluster_nodes") && msg.contains(reason),
                "{bad}: {msg}"
            );
            assert!(!msg.contains("hunter2"), "{msg}");
        }

        // Durable acceptance works in cluster mode, within the same bounds.
        jail.set_env("FLINT__REDIS__CLUSTER_NODES", "[redis://10.0.0.1:7000]");
        jail.set_env("FLINT__REDIS__MIN_REPLICAS_ACKED", "1");
        let config = Config::load(&sources(jail)).expect("acks on a cluster load");
        assert_eq!(config.redis.min_replicas_acked, 1);
        jail.set_env("FLINT__REDIS__MIN_REPLICAS_ACKED", "11");
        let msg = load_err(&sources(jail));
        assert!(msg.contains("redis.min_replicas_acked"), "{msg}");
        Ok(())
    });
}

#[test]
fn replica_acknowledgement_is_off_by_default_and_bounded() {
    Jail::expect_with(|jail| {
        let config = Config::load(&sources(jail)).unwrap();
        assert_eq!(
            config.redis.min_replicas_acked, 0,
            "no WAIT unless asked for"
        );
        assert_eq!(config.redis.min_replicas_timeout_ms, 500);

        jail.set_env("FLINT__REDIS__MIN_REPLICAS_ACKED", "2");
        jail.set_env("FLINT__REDIS__MIN_REPLICAS_TIMEOUT_MS", "10000");
        let config = Config::load(&sources(jail)).unwrap();
        assert_eq!(config.redis.min_replicas_acked, 2);
        assert_eq!(
            config.redis.min_replicas_timeout(),
            std::time::Duration::from_secs(10)
        );

        jail.set_env("FLINT__REDIS__MIN_REPLICAS_ACKED", "11");
        let msg = load_err(&sources(jail));
        assert!(
            msg.contains("redis.min_replicas_acked") && msg.contains("at most 10"),
            "{msg}"
        );
        jail.set_env("FLINT__REDIS__MIN_REPLICAS_ACKED", "-1");
        let msg = load_err(&sources(jail));
        assert!(msg.contains("redis.min_replicas_acked"), "{msg}");
        assert!(msg.contains("FLINT__REDIS__MIN_REPLICAS_ACKED"), "{msg}");

        jail.set_env("FLINT__REDIS__MIN_REPLICAS_ACKED", "1");
        for bad in ["0", "10001"] {
            jail.set_env("FLINT__REDIS__MIN_REPLICAS_TIMEOUT_MS", bad);
            let msg = load_err(&sources(jail));
            assert!(
                msg.contains("redis.min_replicas_timeout_ms") && msg.contains("1–10000"),
                "{bad}: {msg}"
            );
        }
        jail.set_env("FLINT__REDIS__MIN_REPLICAS_TIMEOUT_MS", "1");
        assert_eq!(
            Config::load(&sources(jail))
                .unwrap()
                .redis
                .min_replicas_timeout_ms,
            1
        );
        Ok(())
    });
}

#[test]
fn missing_files_that_were_asked_for_are_errors() {
    Jail::expect_with(|jail| {
        let mut src = sources(jail);
        src.env_name = Some("staging".into());
        assert!(load_err(&src).contains("FLINT_ENV=staging"));

        let mut src = sources(jail);
        src.extra_file = Some(jail.directory().join("nope.toml"));
        assert!(load_err(&src).contains("nope.toml"));

        let mut src = sources(jail);
        src.config_dir_explicit = true;
        assert!(load_err(&src).contains("base.toml"));

        let mut src = sources(jail);
        src.env_name = Some("../etc/passwd".into());
        assert!(load_err(&src).contains("FLINT_ENV"));
        Ok(())
    });
}

#[test]
fn the_redacted_rendering_hides_every_secret() {
    Jail::expect_with(|jail| {
        jail.set_env("FLINT__REDIS__URL", "redis://:hunter2@127.0.0.1:6380");
        jail.set_env("FLINT__SANDBOX__WEBHOOK_SECRET", "whsec_topsecret");
        let config = Config::load(&sources(jail)).unwrap();
        let shown = format!("{}\n{:?}", config.to_redacted_toml(), config);
        for secret in ["hunter2", "whsec_topsecret", "sk_test_flint"] {
            assert!(!shown.contains(secret), "{secret} leaked:\n{shown}");
        }
        assert!(shown.contains(REDACTED));
        assert!(shown.contains("[sandbox]"));
        Ok(())
    });
}

#[test]
fn the_shipped_base_toml_documents_every_key_and_equals_the_defaults() {
    Jail::expect_with(|jail| {
        let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/base.toml");
        jail.create_dir("config")?;
        jail.create_file(
            "config/base.toml",
            &std::fs::read_to_string(shipped).unwrap(),
        )?;
        let from_file = Config::load(&sources(jail)).unwrap();
        assert_eq!(
            from_file.to_redacted_toml(),
            Config::default().to_redacted_toml()
        );
        // Every key of the rendered defaults appears in the shipped file.
        let rendered: toml::Table = toml::from_str(&Config::default().to_redacted_toml()).unwrap();
        let file: toml::Table = toml::from_str(&std::fs::read_to_string(shipped).unwrap()).unwrap();
        assert_same_keys("", &rendered, &file);
        Ok(())
    });
}

fn assert_same_keys(path: &str, expected: &toml::Table, actual: &toml::Table) {
    for (key, value) in expected {
        let here = format!("{path}{key}");
        let other = actual
            .get(key)
            .unwrap_or_else(|| panic!("base.toml lacks `{here}`"));
        if let (toml::Value::Table(e), toml::Value::Table(a)) = (value, other) {
            assert_same_keys(&format!("{here}."), e, a);
        }
    }
}

#[test]
fn tenants_need_unique_names_and_sha256_digests_and_never_show_their_processor_key() {
    Jail::expect_with(|jail| {
        jail.create_dir("config")?;
        let digest = "a".repeat(64);
        let good = format!(
            "[[tenants]]\nid = \"acme\"\napi_key_sha256 = \"{digest}\"\nprocessor_secret_key = \"sk_test_acme_secret\"\n"
        );
        jail.create_file("config/base.toml", &good)?;
        let config = Config::load(&sources(jail)).unwrap();
        assert_eq!(config.tenants.len(), 1);
        assert!(!config.to_redacted_toml().contains("sk_test_acme_secret"));

        jail.create_file(
            "config/base.toml",
            &format!("{good}{}", good.replace(&digest, &"b".repeat(64))),
        )?;
        assert!(load_err(&sources(jail)).contains("tenants[1].id"));
        jail.create_file("config/base.toml", &good.replace(&digest, "not-hex"))?;
        assert!(load_err(&sources(jail)).contains("tenants[0].api_key_sha256"));
        jail.create_file("config/base.toml", &good.replace("acme", "Acme Corp"))?;
        assert!(load_err(&sources(jail)).contains("tenants[0].id"));
        Ok(())
    });
}
