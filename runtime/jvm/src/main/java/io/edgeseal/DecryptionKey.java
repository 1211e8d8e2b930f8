package io.edgeseal;

import java.nio.CharBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * The secret that opens a package: an X25519 device private key, a raw 256-bit key, or a passphrase.
 * Holds a copy of the secret; {@link #destroy()} wipes it. {@code toString} never shows it.
 */
public final class DecryptionKey implements AutoCloseable {
    enum Type { X25519, RAW, PASSPHRASE }

    final Type type;
    private final byte[] secret;

    private DecryptionKey(Type type, byte[] secret) {
        this.type = type;
        this.secret = secret;
    }

    /** An X25519 device private key: the 32 raw bytes (as written by {@code edgeseal keygen}, RFC 7748). */
    public static DecryptionKey x25519(byte[] privateKey) {
        if (privateKey == null || privateKey.length != 32) {
            throw new IllegalArgumentException("an X25519 device private key is exactly 32 raw bytes");
        }
        return new DecryptionKey(Type.X25519, privateKey.clone());
    }

    /** A raw 256-bit key. */
    public static DecryptionKey raw(byte[] key) {
        if (key == null || key.length != 32) {
            throw new IllegalArgumentException("a raw key is exactly 32 bytes");
        }
        return new DecryptionKey(Type.RAW, key.clone());
    }

    /** A passphrase (stretched with scrypt as the slot says). The char array is not kept; wipe it yourself. */
    public static DecryptionKey passphrase(char[] passphrase) {
        if (passphrase == null || passphrase.length == 0) {
            throw new IllegalArgumentException("the passphrase must not be empty");
        }
        java.nio.ByteBuffer utf8 = StandardCharsets.UTF_8.encode(CharBuffer.wrap(passphrase));
        byte[] bytes = new byte[utf8.remaining()];
        utf8.get(bytes);
        if (utf8.hasArray()) {
            Arrays.fill(utf8.array(), (byte) 0);
        }
        return new DecryptionKey(Type.PASSPHRASE, bytes);
    }

    byte[] secret() {
        return secret;
    }

    /** Wipe the held secret (best effort: the JVM may have copied it). */
    public void destroy() {
        Arrays.fill(secret, (byte) 0);
    }

    @Override
    public void close() {
        destroy();
    }

    @Override
    public String toString() {
        return "DecryptionKey(" + type.name().toLowerCase(java.util.Locale.ROOT) + ")";
    }
}
