package io.edgeseal;

import java.nio.ByteBuffer;
import java.security.GeneralSecurityException;
import java.security.KeyFactory;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.security.PrivateKey;
import java.security.PublicKey;
import java.security.Signature;
import java.security.spec.PKCS8EncodedKeySpec;
import java.security.spec.X509EncodedKeySpec;
import java.util.Arrays;
import javax.crypto.Cipher;
import javax.crypto.KeyAgreement;
import javax.crypto.Mac;
import javax.crypto.spec.GCMParameterSpec;
import javax.crypto.spec.IvParameterSpec;
import javax.crypto.spec.SecretKeySpec;

/**
 * The primitives of format v1 over the JCA (JDK classes only): SHA-256, HMAC-SHA256, HKDF-SHA256
 * (RFC 5869, written here: the JDK 17 / Android JCA has no HKDF), AES-256-GCM, ChaCha20-Poly1305,
 * X25519 and Ed25519. Raw 32-byte keys are wrapped in their fixed X.509 / PKCS#8 DER prefixes
 * (RFC 8410) so that only {@code X509EncodedKeySpec} / {@code PKCS8EncodedKeySpec} are needed.
 */
final class Crypto {
    static final int TAG = 16;

    // RFC 8410 DER prefixes: SubjectPublicKeyInfo / PrivateKeyInfo with the OIDs 1.3.101.110 (X25519), .112 (Ed25519).
    private static final byte[] X25519_SPKI = hex("302a300506032b656e032100");
    private static final byte[] X25519_PKCS8 = hex("302e020100300506032b656e04220420");
    private static final byte[] ED25519_SPKI = hex("302a300506032b6570032100");
    private static final byte[] BASE_POINT = new byte[32];

    static {
        BASE_POINT[0] = 9;
    }

    private Crypto() {}

    static byte[] sha256(byte[]... parts) {
        MessageDigest md = digest();
        for (byte[] p : parts) {
            md.update(p);
        }
        return md.digest();
    }

    static MessageDigest digest() {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is missing from this platform", e);
        }
    }

    /** HMAC-SHA256. An empty key is given as one zero byte: HMAC pads keys with zeros, so both are the same key. */
    static Mac hmac(byte[] key) {
        try {
            Mac mac = Mac.getInstance("HmacSHA256");
            mac.init(new SecretKeySpec(key.length == 0 ? new byte[1] : key, "HmacSHA256"));
            return mac;
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("HmacSHA256 is missing from this platform", e);
        }
    }

    /** HKDF-SHA256 (RFC 5869) extract-then-expand. */
    static byte[] hkdf(byte[] ikm, byte[] salt, byte[] info, int length) {
        Mac extract = hmac(salt.length == 0 ? new byte[32] : salt);
        byte[] prk = extract.doFinal(ikm);
        Mac expand = hmac(prk);
        byte[] out = new byte[length];
        byte[] t = new byte[0];
        for (int i = 1, done = 0; done < length; i++) {
            expand.update(t);
            expand.update(info);
            expand.update((byte) i);
            byte[] next = expand.doFinal();
            Arrays.fill(t, (byte) 0);
            t = next;
            int n = Math.min(t.length, length - done);
            System.arraycopy(t, 0, out, done, n);
            done += n;
        }
        Arrays.fill(t, (byte) 0);
        Arrays.fill(prk, (byte) 0);
        return out;
    }

    /** An AEAD cipher initialised for decryption; {@code name} is the manifest's cipher. */
    static Cipher aead(String name, byte[] key, byte[] nonce, byte[] aad) throws EdgesealException {
        try {
            Cipher c;
            if (name.equals("aes-256-gcm")) {
                c = Cipher.getInstance("AES/GCM/NoPadding");
                c.init(Cipher.DECRYPT_MODE, new SecretKeySpec(key, "AES"), new GCMParameterSpec(TAG * 8, nonce));
            } else {
                c = chacha();
                c.init(Cipher.DECRYPT_MODE, new SecretKeySpec(key, "ChaCha20"), new IvParameterSpec(nonce));
            }
            c.updateAAD(aad);
            return c;
        } catch (NoSuchAlgorithmException | javax.crypto.NoSuchPaddingException e) {
            throw new UnsupportedException(name + " is not available on this platform (Android: AES-GCM needs "
                    + "API 19+, ChaCha20-Poly1305 API 28+); reseal the model with the other cipher", e);
        } catch (GeneralSecurityException e) {
            throw new InvalidPackageException();
        }
    }

    private static Cipher chacha() throws GeneralSecurityException {
        try {
            return Cipher.getInstance("ChaCha20-Poly1305"); // JDK 11+ name; an alias in Conscrypt
        } catch (NoSuchAlgorithmException e) {
            return Cipher.getInstance("ChaCha20/Poly1305/NoPadding"); // Android's documented name (API 28+)
        }
    }

    /** AEAD-decrypt {@code ct} (ciphertext with the 16-byte tag) into {@code out}; a bad tag is InvalidPackage. */
    static void open(String name, byte[] key, byte[] nonce, byte[] aad, ByteBuffer ct, ByteBuffer out)
            throws EdgesealException {
        Cipher c = aead(name, key, nonce, aad);
        try {
            c.doFinal(ct, out);
        } catch (GeneralSecurityException | IllegalStateException e) {
            throw new InvalidPackageException();
        }
    }

    static byte[] open(String name, byte[] key, byte[] nonce, byte[] aad, byte[] ct) throws EdgesealException {
        if (ct.length < TAG) {
            throw new InvalidPackageException();
        }
        ByteBuffer out = ByteBuffer.allocate(ct.length - TAG);
        open(name, key, nonce, aad, ByteBuffer.wrap(ct), out);
        return out.array();
    }

    /** X25519(private, public); rejects an all-zero result (§4). */
    static byte[] x25519(byte[] privateKey, byte[] publicKey) throws EdgesealException {
        byte[] pkcs8 = concat(X25519_PKCS8, privateKey);
        try {
            KeyFactory kf = KeyFactory.getInstance("XDH");
            PrivateKey priv = kf.generatePrivate(new PKCS8EncodedKeySpec(pkcs8));
            PublicKey pub = kf.generatePublic(new X509EncodedKeySpec(concat(X25519_SPKI, publicKey)));
            KeyAgreement ka = KeyAgreement.getInstance("XDH");
            ka.init(priv);
            ka.doPhase(pub, true);
            byte[] shared = ka.generateSecret();
            int acc = 0;
            for (byte b : shared) {
                acc |= b;
            }
            if (acc == 0) {
                throw new InvalidPackageException();
            }
            return shared;
        } catch (NoSuchAlgorithmException e) {
            throw new UnsupportedException("X25519 (XDH) is not available on this platform (Android: API 33+); "
                    + "seal for a raw key or a passphrase instead", e);
        } catch (GeneralSecurityException | RuntimeException e) {
            throw new InvalidPackageException();
        } finally {
            Arrays.fill(pkcs8, (byte) 0);
        }
    }

    /** The X25519 public key of a private key: X25519(d, 9). */
    static byte[] x25519Public(byte[] privateKey) throws EdgesealException {
        return x25519(privateKey, BASE_POINT);
    }

    /** Ed25519 (RFC 8032, pure) verification; false for any malformed key or signature. */
    static boolean ed25519Verify(byte[] publicKey, byte[] message, byte[] signature) throws EdgesealException {
        try {
            KeyFactory kf = KeyFactory.getInstance("Ed25519");
            PublicKey pub = kf.generatePublic(new X509EncodedKeySpec(concat(ED25519_SPKI, publicKey)));
            Signature verifier = Signature.getInstance("Ed25519");
            verifier.initVerify(pub);
            verifier.update(message);
            return verifier.verify(signature);
        } catch (NoSuchAlgorithmException e) {
            throw new UnsupportedException("Ed25519 is not available on this platform (Android: Signature "
                    + "API 33+); the publisher signature cannot be checked here", e);
        } catch (GeneralSecurityException | RuntimeException e) {
            return false;
        }
    }

    static byte[] concat(byte[]... parts) {
        int n = 0;
        for (byte[] p : parts) {
            n += p.length;
        }
        byte[] out = new byte[n];
        int at = 0;
        for (byte[] p : parts) {
            System.arraycopy(p, 0, out, at, p.length);
            at += p.length;
        }
        return out;
    }

    static byte[] ascii(String s) {
        return s.getBytes(java.nio.charset.StandardCharsets.US_ASCII);
    }

    static byte[] hex(String s) {
        byte[] out = new byte[s.length() / 2];
        for (int i = 0; i < out.length; i++) {
            out[i] = (byte) Integer.parseInt(s.substring(2 * i, 2 * i + 2), 16);
        }
        return out;
    }

    static String toHex(byte[] b) {
        StringBuilder sb = new StringBuilder(b.length * 2);
        for (byte x : b) {
            sb.append(Character.forDigit((x >> 4) & 15, 16)).append(Character.forDigit(x & 15, 16));
        }
        return sb.toString();
    }

    /** Constant-time equality for fingerprints and keys. */
    static boolean equal(byte[] a, byte[] b) {
        return MessageDigest.isEqual(a, b);
    }
}
