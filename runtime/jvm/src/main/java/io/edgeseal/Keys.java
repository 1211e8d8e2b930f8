package io.edgeseal;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Base64;

/**
 * Raw key bytes from the PEM files {@code edgeseal keygen} writes: an X25519 device private key
 * (PKCS#8, {@code BEGIN PRIVATE KEY}) and an Ed25519 publisher public key (SubjectPublicKeyInfo,
 * {@code BEGIN PUBLIC KEY}), both RFC 8410. Uses {@code java.util.Base64} (Android API 26+).
 * Passphrase-protected PEM ({@code BEGIN ENCRYPTED PRIVATE KEY}) is not read: decrypt it first.
 */
public final class Keys {
    private static final byte[] X25519_PKCS8 = Crypto.hex("302e020100300506032b656e04220420");
    private static final byte[] ED25519_SPKI = Crypto.hex("302a300506032b6570032100");

    private Keys() {}

    /** The 32 raw bytes of an unencrypted X25519 private key PEM, for {@link DecryptionKey#x25519}. */
    public static byte[] x25519PrivateFromPem(String pem) {
        byte[] der = der(pem, "PRIVATE KEY");
        try {
            return raw(der, X25519_PKCS8, "an X25519 private key (PKCS#8, RFC 8410)");
        } finally {
            Arrays.fill(der, (byte) 0);
        }
    }

    /** The 32 raw bytes of an Ed25519 public key PEM, for {@link OpenOptions.Builder#trust}. */
    public static byte[] ed25519PublicFromPem(String pem) {
        return raw(der(pem, "PUBLIC KEY"), ED25519_SPKI, "an Ed25519 public key (SubjectPublicKeyInfo, RFC 8410)");
    }

    private static byte[] der(String pem, String label) {
        if (pem.contains("ENCRYPTED PRIVATE KEY")) {
            throw new IllegalArgumentException("the PEM is passphrase-protected; decrypt it first "
                    + "(openssl pkey -in key.pem -out plain.pem) or keep the key in the Android Keystore");
        }
        String begin = "-----BEGIN " + label + "-----";
        String end = "-----END " + label + "-----";
        int a = pem.indexOf(begin);
        int b = pem.indexOf(end);
        if (a < 0 || b < a) {
            throw new IllegalArgumentException("not a PEM '" + label + "' block");
        }
        String body = pem.substring(a + begin.length(), b).replaceAll("\\s", "");
        try {
            return Base64.getDecoder().decode(body.getBytes(StandardCharsets.US_ASCII));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("the PEM body is not valid base64");
        }
    }

    private static byte[] raw(byte[] der, byte[] prefix, String what) {
        if (der.length != prefix.length + 32 || !Arrays.equals(Arrays.copyOf(der, prefix.length), prefix)) {
            throw new IllegalArgumentException("the PEM does not hold " + what);
        }
        return Arrays.copyOfRange(der, prefix.length, der.length);
    }
}
