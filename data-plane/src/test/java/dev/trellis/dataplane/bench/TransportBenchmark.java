package dev.trellis.dataplane.bench;

import dev.trellis.proto.wireguard.ChaChaPoly;
import java.security.GeneralSecurityException;
import java.security.SecureRandom;
import java.util.Arrays;
import java.util.concurrent.TimeUnit;
import javax.crypto.Cipher;
import javax.crypto.spec.IvParameterSpec;
import javax.crypto.spec.SecretKeySpec;
import org.bouncycastle.crypto.InvalidCipherTextException;
import org.bouncycastle.crypto.modes.ChaCha20Poly1305;
import org.bouncycastle.crypto.params.AEADParameters;
import org.bouncycastle.crypto.params.KeyParameter;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;

/**
 * ChaCha20-Poly1305 on one transport packet per operation (default 1420 bytes, a full packet at
 * WireGuard's default MTU): the JDK cipher through Trellis's {@link ChaChaPoly} (what the data
 * plane uses), against BouncyCastle's {@link ChaCha20Poly1305}. Both are array-based, with
 * WireGuard's nonce (4 zero bytes + 64-bit little-endian counter) and no additional data, as on
 * transport packets. Seal uses a fresh counter every time: both libraries refuse to encrypt twice
 * with one key and nonce. Open decrypts the same sealed packet over and over (no replay window
 * here).
 *
 * <p>MB/s = ops/s × size / 10^6. The {@code *InitOnly} benchmarks measure only the per-packet
 * re-keying of the cipher that both APIs require (a new nonce needs a new init).
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
public class TransportBenchmark {
  @Param({"1420"})
  public int size;

  private byte[] key;
  private byte[] plain;
  private byte[] out;
  private long counter;

  // JDK, through Trellis's wrapper.
  private ChaChaPoly jdk;
  private SecretKeySpec jdkKey;
  private byte[] jdkSealed;
  private int jdkSealedLength;

  // JDK, raw Cipher, for the init-only measurement.
  private Cipher rawCipher;
  private final byte[] rawNonce = new byte[ChaChaPoly.NONCE_LENGTH];

  // BouncyCastle.
  private ChaCha20Poly1305 bc;
  private KeyParameter bcKey;
  private final byte[] bcNonce = new byte[ChaChaPoly.NONCE_LENGTH];
  private byte[] bcSealed;
  private int bcSealedLength;

  @Setup(Level.Trial)
  public void setUp() throws Exception {
    SecureRandom random = new SecureRandom();
    key = new byte[ChaChaPoly.KEY_LENGTH];
    random.nextBytes(key);
    plain = new byte[size];
    random.nextBytes(plain);
    out = new byte[size + ChaChaPoly.TAG_LENGTH];

    jdk = new ChaChaPoly();
    jdkKey = ChaChaPoly.key(key);
    jdkSealed = new byte[size + ChaChaPoly.TAG_LENGTH];
    jdkSealedLength = jdk.seal(jdkKey, 0, plain, 0, size, null, jdkSealed, 0);

    rawCipher = Cipher.getInstance("ChaCha20-Poly1305");

    bc = new ChaCha20Poly1305();
    bcKey = new KeyParameter(key);
    bcSealed = new byte[size + ChaChaPoly.TAG_LENGTH];
    bcInit(true, 0);
    int n = bc.processBytes(plain, 0, size, bcSealed, 0);
    bcSealedLength = n + bc.doFinal(bcSealed, n);
    if (bcSealedLength != jdkSealedLength || !Arrays.equals(bcSealed, jdkSealed)) {
      throw new IllegalStateException("JDK and BouncyCastle disagree on ChaCha20-Poly1305 output");
    }
    counter = 1;
  }

  private static void putCounter(byte[] nonce, long counter) {
    for (int i = 0; i < 8; i++) {
      nonce[4 + i] = (byte) (counter >>> (8 * i));
    }
  }

  private void bcInit(boolean encrypt, long n) {
    putCounter(bcNonce, n);
    bc.init(encrypt, new AEADParameters(bcKey, 128, bcNonce));
  }

  @Benchmark
  public int jdkSeal() {
    return jdk.seal(jdkKey, counter++, plain, 0, size, null, out, 0);
  }

  @Benchmark
  public int jdkOpen() {
    int n = jdk.open(jdkKey, 0, jdkSealed, 0, jdkSealedLength, null, out, 0);
    if (n != size) {
      throw new IllegalStateException("JDK open failed");
    }
    return n;
  }

  @Benchmark
  public int bcSeal() throws InvalidCipherTextException {
    bcInit(true, counter++);
    int n = bc.processBytes(plain, 0, size, out, 0);
    return n + bc.doFinal(out, n);
  }

  @Benchmark
  public int bcOpen() throws InvalidCipherTextException {
    bcInit(false, 0);
    int n = bc.processBytes(bcSealed, 0, bcSealedLength, out, 0);
    n += bc.doFinal(out, n);
    if (n != size) {
      throw new IllegalStateException("BouncyCastle open failed");
    }
    return n;
  }

  /** Cipher.init for encryption with a new nonce, as {@link ChaChaPoly#seal} does per packet. */
  @Benchmark
  public Cipher jdkInitOnlyEncrypt() throws GeneralSecurityException {
    putCounter(rawNonce, counter++);
    rawCipher.init(Cipher.ENCRYPT_MODE, jdkKey, new IvParameterSpec(rawNonce));
    return rawCipher;
  }

  /** Cipher.init for decryption, as {@link ChaChaPoly#open} does per packet. */
  @Benchmark
  public Cipher jdkInitOnlyDecrypt() throws GeneralSecurityException {
    putCounter(rawNonce, counter++);
    rawCipher.init(Cipher.DECRYPT_MODE, jdkKey, new IvParameterSpec(rawNonce));
    return rawCipher;
  }

  /** BouncyCastle's per-packet init, for comparison. */
  @Benchmark
  public ChaCha20Poly1305 bcInitOnlyEncrypt() {
    bcInit(true, counter++);
    return bc;
  }
}
