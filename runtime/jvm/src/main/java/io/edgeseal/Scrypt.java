package io.edgeseal;

import java.util.Arrays;
import javax.crypto.Mac;

/**
 * scrypt (RFC 7914) for passphrase slots: the JDK has no scrypt, so it is written here over the
 * JDK's HMAC-SHA256 (PBKDF2 with one iteration) and a Salsa20/8 core. Checked against the RFC's
 * test vectors by the test driver.
 */
final class Scrypt {
    private Scrypt() {}

    /** scrypt(password, salt, N = 2^log2n, r, p, dkLen). The caller has checked the parameter bounds. */
    static byte[] derive(byte[] password, byte[] salt, int log2n, int r, int p, int dkLen) {
        int n = 1 << log2n;
        int blockInts = 32 * r; // 128·r bytes
        byte[] b = pbkdf2(password, salt, p * 128 * r);
        int[] x = new int[blockInts];
        int[] scratch = new int[blockInts];
        int[] v = new int[blockInts * n];
        try {
            for (int i = 0; i < p; i++) {
                decode(b, i * 128 * r, x);
                roMix(x, v, scratch, n, r);
                encode(x, b, i * 128 * r);
            }
            return pbkdf2(password, b, dkLen);
        } finally {
            Arrays.fill(b, (byte) 0);
            Arrays.fill(x, 0);
            Arrays.fill(scratch, 0);
            Arrays.fill(v, 0);
        }
    }

    /** PBKDF2-HMAC-SHA256 with one iteration (all scrypt needs). */
    static byte[] pbkdf2(byte[] password, byte[] salt, int length) {
        Mac mac = Crypto.hmac(password);
        byte[] out = new byte[length];
        for (int i = 1, done = 0; done < length; i++) {
            mac.update(salt);
            mac.update(new byte[] {(byte) (i >>> 24), (byte) (i >>> 16), (byte) (i >>> 8), (byte) i});
            byte[] t = mac.doFinal();
            int k = Math.min(t.length, length - done);
            System.arraycopy(t, 0, out, done, k);
            Arrays.fill(t, (byte) 0);
            done += k;
        }
        return out;
    }

    private static void roMix(int[] x, int[] v, int[] scratch, int n, int r) {
        int len = 32 * r;
        for (int i = 0; i < n; i++) {
            System.arraycopy(x, 0, v, i * len, len);
            blockMix(x, scratch, r);
        }
        for (int i = 0; i < n; i++) {
            int j = x[(2 * r - 1) * 16] & (n - 1); // Integerify: first word of the last 64-byte block, mod N
            for (int k = 0; k < len; k++) {
                x[k] ^= v[j * len + k];
            }
            blockMix(x, scratch, r);
        }
    }

    /** BlockMix_{Salsa20/8, r}: in place on b (2r 64-byte blocks), using y as scratch. */
    private static void blockMix(int[] b, int[] y, int r) {
        int[] t = new int[16];
        System.arraycopy(b, (2 * r - 1) * 16, t, 0, 16);
        for (int i = 0; i < 2 * r; i++) {
            for (int k = 0; k < 16; k++) {
                t[k] ^= b[i * 16 + k];
            }
            salsa208(t);
            // even blocks go to the first half, odd blocks to the second half
            int dest = (i % 2 == 0) ? (i / 2) * 16 : (r + i / 2) * 16;
            System.arraycopy(t, 0, y, dest, 16);
        }
        System.arraycopy(y, 0, b, 0, 32 * r);
    }

    private static void salsa208(int[] b) {
        int x0 = b[0], x1 = b[1], x2 = b[2], x3 = b[3], x4 = b[4], x5 = b[5], x6 = b[6], x7 = b[7];
        int x8 = b[8], x9 = b[9], x10 = b[10], x11 = b[11], x12 = b[12], x13 = b[13], x14 = b[14], x15 = b[15];
        for (int i = 0; i < 8; i += 2) {
            x4 ^= Integer.rotateLeft(x0 + x12, 7);  x8 ^= Integer.rotateLeft(x4 + x0, 9);
            x12 ^= Integer.rotateLeft(x8 + x4, 13); x0 ^= Integer.rotateLeft(x12 + x8, 18);
            x9 ^= Integer.rotateLeft(x5 + x1, 7);   x13 ^= Integer.rotateLeft(x9 + x5, 9);
            x1 ^= Integer.rotateLeft(x13 + x9, 13); x5 ^= Integer.rotateLeft(x1 + x13, 18);
            x14 ^= Integer.rotateLeft(x10 + x6, 7); x2 ^= Integer.rotateLeft(x14 + x10, 9);
            x6 ^= Integer.rotateLeft(x2 + x14, 13); x10 ^= Integer.rotateLeft(x6 + x2, 18);
            x3 ^= Integer.rotateLeft(x15 + x11, 7); x7 ^= Integer.rotateLeft(x3 + x15, 9);
            x11 ^= Integer.rotateLeft(x7 + x3, 13); x15 ^= Integer.rotateLeft(x11 + x7, 18);
            x1 ^= Integer.rotateLeft(x0 + x3, 7);   x2 ^= Integer.rotateLeft(x1 + x0, 9);
            x3 ^= Integer.rotateLeft(x2 + x1, 13);  x0 ^= Integer.rotateLeft(x3 + x2, 18);
            x6 ^= Integer.rotateLeft(x5 + x4, 7);   x7 ^= Integer.rotateLeft(x6 + x5, 9);
            x4 ^= Integer.rotateLeft(x7 + x6, 13);  x5 ^= Integer.rotateLeft(x4 + x7, 18);
            x11 ^= Integer.rotateLeft(x10 + x9, 7); x8 ^= Integer.rotateLeft(x11 + x10, 9);
            x9 ^= Integer.rotateLeft(x8 + x11, 13); x10 ^= Integer.rotateLeft(x9 + x8, 18);
            x12 ^= Integer.rotateLeft(x15 + x14, 7); x13 ^= Integer.rotateLeft(x12 + x15, 9);
            x14 ^= Integer.rotateLeft(x13 + x12, 13); x15 ^= Integer.rotateLeft(x14 + x13, 18);
        }
        b[0] += x0; b[1] += x1; b[2] += x2; b[3] += x3; b[4] += x4; b[5] += x5; b[6] += x6; b[7] += x7;
        b[8] += x8; b[9] += x9; b[10] += x10; b[11] += x11; b[12] += x12; b[13] += x13; b[14] += x14; b[15] += x15;
    }

    private static void decode(byte[] src, int off, int[] dst) {
        for (int i = 0; i < dst.length; i++) {
            int k = off + 4 * i;
            dst[i] = (src[k] & 0xff) | (src[k + 1] & 0xff) << 8 | (src[k + 2] & 0xff) << 16 | (src[k + 3] & 0xff) << 24;
        }
    }

    private static void encode(int[] src, byte[] dst, int off) {
        for (int i = 0; i < src.length; i++) {
            int k = off + 4 * i;
            dst[k] = (byte) src[i];
            dst[k + 1] = (byte) (src[i] >>> 8);
            dst[k + 2] = (byte) (src[i] >>> 16);
            dst[k + 3] = (byte) (src[i] >>> 24);
        }
    }
}
