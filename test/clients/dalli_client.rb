# Drives Ruby Dalli (its default protocol) for the real-client tests: a JSON job
# on stdin, one JSON result on stdout. See test/support/real-clients.ts.
require 'base64'
require 'json'
require 'dalli'

def value_of(spec)
  # {"int": n}: Dalli stores an integer marshalled, under its serialized flag.
  return spec['int'] if spec.is_a?(Hash)

  spec.is_a?(Array) ? spec[0] * spec[1] : spec
end

# Plain bytes for strings; an integer goes through Dalli's serializer.
def opts_for(value)
  value.is_a?(Integer) ? {} : RAW
end

job = JSON.parse($stdin.read)
opts = { value_max_bytes: 2 * 1024 * 1024, socket_timeout: 5, down_retry_delay: 0 }
# Values as plain bytes (no Marshal), asked for per call as Dalli 3.0 honours it there.
RAW = { raw: true }.freeze
# Connection 0 and 1: two clients, so writes to one key come from different connections.
clients = [Dalli::Client.new(job['servers'], opts), Dalli::Client.new(job['servers'], opts)]
out = {}

run = lambda do |c, op|
  name = op[0]
  args = op[2..]
  case name
  when 'set' then c.set(args[0], value_of(args[1]), args[2], opts_for(value_of(args[1])))
  when 'add' then c.add(args[0], value_of(args[1]), args[2], RAW)
  when 'replace' then c.replace(args[0], value_of(args[1]), args[2], RAW)
  when 'delete' then c.delete(args[0])
  when 'incr' then args.length > 2 ? c.incr(args[0], args[1], args[2], args[3]) : c.incr(args[0], args[1])
  when 'decr' then args.length > 2 ? c.decr(args[0], args[1], args[2], args[3]) : c.decr(args[0], args[1])
  when 'append' then c.append(args[0], value_of(args[1]))
  when 'prepend' then c.prepend(args[0], value_of(args[1]))
  when 'touch' then c.touch(args[0], args[1])
  when 'cas'
    c.cas(args[0], args[2], RAW) do |_|
      # Another connection writes first: this cas loses.
      clients[1].set(args[0], value_of(args[3]), args[2], RAW) if args.length > 3
      value_of(args[1])
    end
  when 'get_multi' then c.get_multi(*args[0], RAW)
  when 'sleep' then sleep(args[0])
  when 'read'
    args[0].each do |key|
      v = c.get(key, RAW)
      out[key] = v.nil? ? nil : Base64.strict_encode64(v.to_s)
    end
  end
end

job['ops'].each do |op|
  c = clients[op[1]]
  begin
    if op[0] == 'quiet'
      # Dalli's quiet block (`multi` before 3.1): setq/deleteq/... pipelined, ended by a noop.
      block = -> { op[2].each { |inner| run.call(c, inner) } }
      c.respond_to?(:quiet) ? c.quiet(&block) : c.multi(&block)
    else
      run.call(c, op)
    end
  rescue Dalli::DalliError => e
    # Refused on the source (part of the workload): told on stderr for the test's messages.
    $stderr.puts("#{op[0]} #{op[2].inspect}: #{e.class}: #{e.message}")
  end
end
$stdout.write(JSON.generate(out))
