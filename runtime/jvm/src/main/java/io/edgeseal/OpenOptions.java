package io.edgeseal;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * What the app trusts and accepts: publisher keys, unsigned packages, the version floor, the clock.
 * Immutable; build with {@link #builder()}. Safe defaults: nothing trusted, unsigned refused, no floor,
 * the system clock.
 */
public final class OpenOptions {
    final List<byte[]> trusted;
    final boolean allowUnsigned;
    final Long minVersion;
    final Long nowSeconds; // null: the system clock
    final long maxPlaintextBytes;
    final long scryptBudget;

    private OpenOptions(Builder b) {
        this.trusted = Collections.unmodifiableList(new ArrayList<>(b.trusted));
        this.allowUnsigned = b.allowUnsigned;
        this.minVersion = b.minVersion;
        this.nowSeconds = b.nowSeconds;
        this.maxPlaintextBytes = b.maxPlaintextBytes;
        this.scryptBudget = b.scryptBudget;
    }

    public static Builder builder() {
        return new Builder();
    }

    long now() {
        return nowSeconds != null ? nowSeconds : System.currentTimeMillis() / 1000L;
    }

    public static final class Builder {
        private final List<byte[]> trusted = new ArrayList<>();
        private boolean allowUnsigned;
        private Long minVersion;
        private Long nowSeconds;
        private long maxPlaintextBytes = Integer.MAX_VALUE - 8;
        private long scryptBudget = SealedPackage.DEFAULT_SCRYPT_BUDGET;

        private Builder() {}

        /** Trust a publisher's Ed25519 public key (32 raw bytes, {@code edgeseal keygen --publisher}). */
        public Builder trust(byte[] publisherPublicKey) {
            if (publisherPublicKey == null || publisherPublicKey.length != 32) {
                throw new IllegalArgumentException("a publisher public key is exactly 32 raw bytes (Ed25519)");
            }
            trusted.add(publisherPublicKey.clone());
            return this;
        }

        /** Load packages with no signature (and, with no trusted keys, packages signed by any key). Off by default. */
        public Builder allowUnsigned(boolean allow) {
            this.allowUnsigned = allow;
            return this;
        }

        /** Refuse packages whose {@code model_version} is below {@code floor} (rollback protection). */
        public Builder minVersion(long floor) {
            if (floor < 0) {
                throw new IllegalArgumentException("the minimum version must be >= 0");
            }
            this.minVersion = floor;
            return this;
        }

        /** The current time in Unix seconds, for expiry checks (tests; devices with a trusted clock). */
        public Builder now(long unixSeconds) {
            this.nowSeconds = unixSeconds;
            return this;
        }

        /** Largest decoded payload accepted (default and ceiling: one ByteBuffer, 2^31 - 9 bytes). */
        public Builder maxPlaintextBytes(long max) {
            if (max < 0 || max > Integer.MAX_VALUE - 8) {
                throw new IllegalArgumentException("maxPlaintextBytes must be within 0 .. 2^31 - 9");
            }
            this.maxPlaintextBytes = max;
            return this;
        }

        /** Scrypt work (N * r * p, summed over the passphrase slots tried) one open may spend (default 2^24). */
        public Builder scryptBudget(long work) {
            if (work < 0) {
                throw new IllegalArgumentException("scryptBudget must be >= 0");
            }
            this.scryptBudget = work;
            return this;
        }

        public OpenOptions build() {
            return new OpenOptions(this);
        }
    }
}
