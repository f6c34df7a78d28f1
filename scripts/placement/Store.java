// Stores every key of a memshift placement job through spymemcached.
// Usage: java -cp spymemcached.jar:. Store JOB.keys MODE host:port...
// JOB.keys holds one key per line (UTF-8); MODE is "default" or "ketama".
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import net.spy.memcached.AddrUtil;
import net.spy.memcached.ConnectionFactory;
import net.spy.memcached.DefaultConnectionFactory;
import net.spy.memcached.KetamaConnectionFactory;
import net.spy.memcached.MemcachedClient;

public class Store {
  public static void main(String[] args) throws Exception {
    List<String> keys = Files.readAllLines(Paths.get(args[0]), StandardCharsets.UTF_8);
    ConnectionFactory factory =
        args[1].equals("ketama") ? new KetamaConnectionFactory() : new DefaultConnectionFactory();
    StringBuilder servers = new StringBuilder();
    for (int i = 2; i < args.length; i++) servers.append(args[i]).append(' ');
    MemcachedClient client = new MemcachedClient(factory, AddrUtil.getAddresses(servers.toString().trim()));
    List<Future<Boolean>> pending = new ArrayList<>();
    int failed = 0;
    for (String key : keys) {
      try {
        pending.add(client.set(key, 0, "v"));
      } catch (IllegalArgumentException e) {
        failed++;
      }
    }
    int stored = 0;
    for (Future<Boolean> f : pending) {
      try {
        if (f.get(10, TimeUnit.SECONDS)) stored++;
        else failed++;
      } catch (Exception e) {
        failed++;
      }
    }
    client.shutdown(5, TimeUnit.SECONDS);
    System.out.println("{\"stored\": " + stored + ", \"failed\": " + failed + "}");
  }
}
