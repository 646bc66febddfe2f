// Written by hand: one schema for both backends (see diesel.toml).

diesel::table! {
    users (id) {
        id -> BigInt,
        username -> Text,
        password_hash -> Text,
        role -> Text,
        disabled -> Bool,
        session_generation -> BigInt,
        must_change_password -> Bool,
        created_at -> Timestamp,
        last_login_at -> Nullable<Timestamp>,
        password_changed_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    hosts (id) {
        id -> BigInt,
        host_id -> Text,
        primary_name -> Text,
        created_at -> Timestamp,
        created_by -> Text,
        auto_reissue_until -> Nullable<Timestamp>,
        renewal_allowed_until -> Nullable<Timestamp>,
        trust_seen_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    host_mappings (id) {
        id -> BigInt,
        host_id -> Text,
        name -> Text,
        state -> Text,
        source -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    tokens (id) {
        id -> BigInt,
        name -> Text,
        kind -> Text,
        value_encrypted -> Binary,
        value_digest -> Text,
        max_uses -> Integer,
        uses -> Integer,
        valid_until -> Timestamp,
        reason -> Text,
        host_id -> Nullable<Text>,
        created_by -> Text,
        created_at -> Timestamp,
        last_used_at -> Nullable<Timestamp>,
        last_used_by -> Nullable<Text>,
    }
}

diesel::table! {
    certificates (id) {
        id -> BigInt,
        serial -> Text,
        host_id -> Text,
        subject -> Text,
        names -> Text,
        not_before -> Timestamp,
        not_after -> Timestamp,
        fingerprint_sha256 -> Text,
        pem -> Text,
        token_name -> Nullable<Text>,
        created_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
        revocation_reason -> Nullable<Text>,
        revoked_by -> Nullable<Text>,
        issued_via -> Text,
        acme_account_id -> Nullable<Text>,
        replaces -> Nullable<Text>,
        issuer_id -> Nullable<BigInt>,
        renew_by -> Nullable<Timestamp>,
    }
}

diesel::table! {
    audit_events (id) {
        id -> BigInt,
        at -> Timestamp,
        category -> Text,
        action -> Text,
        actor -> Text,
        target -> Text,
        description -> Text,
        reason -> Text,
        outcome -> Text,
        prev_hash -> Text,
        hash -> Text,
        chain -> Integer,
        occurrences -> BigInt,
        first_at -> Nullable<Timestamp>,
        last_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    settings (id) {
        id -> BigInt,
        security_level -> Text,
        auto_map_host_names -> Bool,
        certificate_validity_days -> Integer,
        auto_reissue_minutes -> Integer,
        audit_retention_days -> Integer,
        crl_number -> BigInt,
        ca_fingerprint -> Text,
        audit_anchor_id -> BigInt,
        audit_anchor_hash -> Text,
        updated_at -> Nullable<Timestamp>,
        allowed_domains -> Text,
        reserved_names -> Text,
        renewal_interval_minutes -> Integer,
        audit_key_id -> Text,
        audit_legacy_through -> BigInt,
        audit_seal -> Text,
        issuers_generation -> BigInt,
    }
}

diesel::table! {
    login_attempts (id) {
        id -> BigInt,
        username -> Text,
        address -> Text,
        at -> Timestamp,
        success -> Bool,
    }
}

diesel::table! {
    api_keys (id) {
        id -> BigInt,
        user_id -> BigInt,
        name -> Text,
        digest -> Text,
        prefix -> Text,
        created_at -> Timestamp,
        expires_at -> Nullable<Timestamp>,
        last_used_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    nonces (digest) {
        digest -> Text,
        purpose -> Text,
        host_id -> Nullable<Text>,
        created_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    ended_sessions (session_id) {
        session_id -> Text,
        user_id -> BigInt,
        ended_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    acme_accounts (id) {
        id -> BigInt,
        account_id -> Text,
        thumbprint -> Text,
        jwk -> Text,
        status -> Text,
        binding -> Text,
        token_name -> Nullable<Text>,
        host_id -> Nullable<Text>,
        contact -> Text,
        created_at -> Timestamp,
        last_order_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    acme_orders (id) {
        id -> BigInt,
        order_id -> Text,
        account_id -> Text,
        identifiers -> Text,
        status -> Text,
        replaces -> Nullable<Text>,
        certificate_serial -> Nullable<Text>,
        error -> Nullable<Text>,
        created_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    acme_authorizations (id) {
        id -> BigInt,
        authz_id -> Text,
        order_id -> Text,
        account_id -> Text,
        identifier -> Text,
        status -> Text,
        challenge_token -> Nullable<Text>,
        challenge_status -> Nullable<Text>,
        challenge_type -> Nullable<Text>,
        validated_at -> Nullable<Timestamp>,
        error -> Nullable<Text>,
        created_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    issuers (id) {
        id -> BigInt,
        role -> Text,
        state -> Text,
        parent_id -> Nullable<BigInt>,
        subject -> Text,
        cert_pem -> Text,
        fingerprint_sha256 -> Text,
        key_id -> Text,
        key_type -> Text,
        key_location -> Text,
        not_before -> Timestamp,
        not_after -> Timestamp,
        created_at -> Timestamp,
        activated_at -> Nullable<Timestamp>,
        retired_at -> Nullable<Timestamp>,
        decommissioned_at -> Nullable<Timestamp>,
        arl_der -> Nullable<Binary>,
    }
}

diesel::table! {
    ca_migrations (id) {
        id -> BigInt,
        from_issuer_id -> BigInt,
        to_issuer_id -> BigInt,
        phase -> Text,
        reason -> Text,
        initiated_by -> Text,
        initiated_at -> Timestamp,
        activated_at -> Nullable<Timestamp>,
        completed_at -> Nullable<Timestamp>,
        forced -> Bool,
        decommissioned_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    notification_targets (id) {
        id -> BigInt,
        kind -> Text,
        name -> Text,
        destination -> Text,
        secret_sealed -> Nullable<Binary>,
        events -> Text,
        digest -> Bool,
        digest_hour -> Integer,
        enabled -> Bool,
        smtp_host -> Text,
        smtp_port -> Integer,
        smtp_tls -> Text,
        smtp_username -> Text,
        smtp_from -> Text,
        created_by -> Text,
        created_at -> Timestamp,
        tls_ca_pem -> Text,
    }
}

diesel::table! {
    notification_deliveries (id) {
        id -> BigInt,
        target_id -> BigInt,
        event -> Text,
        dedupe_key -> Text,
        subject -> Text,
        payload -> Text,
        state -> Text,
        attempts -> Integer,
        next_attempt_at -> Timestamp,
        claimed_until -> Nullable<Timestamp>,
        last_error -> Nullable<Text>,
        created_at -> Timestamp,
        sent_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    ocsp_responses (issuer_id, serial, hash_alg) {
        issuer_id -> BigInt,
        serial -> Text,
        hash_alg -> Text,
        status -> Text,
        der -> Binary,
        this_update -> Timestamp,
        refresh_at -> Timestamp,
        next_update -> Timestamp,
        mac -> Text,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    ocsp_responses,
    notification_targets,
    notification_deliveries,
    issuers,
    ca_migrations,
    acme_accounts,
    acme_orders,
    acme_authorizations,
    api_keys,
    login_attempts,
    users,
    hosts,
    host_mappings,
    tokens,
    certificates,
    audit_events,
    settings,
    nonces,
    ended_sessions,
);
