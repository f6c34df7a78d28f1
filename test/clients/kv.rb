# Writes or reads items through Ruby Dalli, for memshift's tests.
# Usage: ruby kv.rb < JOB.json   (the job format of kv.py; kinds bytes, text, int, dict)
# Prints {"stored": n, "failed": [keys]} for set, {"ok": n, "wrong": [...], "missing": [...]} for get.
require 'base64'
require 'json'
require 'dalli'

job = JSON.parse($stdin.read)
servers = job['servers'].map { |s| "#{s['host']}:#{s['port']}:#{s['weight'] || 1}" }
client = Dalli::Client.new(servers, failover: false, socket_timeout: 5,
                                    value_max_bytes: 4 * 1024 * 1024)

def value_of(item)
  case item['kind']
  when 'bytes' then Base64.strict_decode64(item['value']) * (item['repeat'] || 1)
  when 'text' then item['value'] * (item['repeat'] || 1)
  when 'int' then Integer(item['value'])
  when 'dict' then { 'v' => item['value'], 'n' => [1, 2, 3] }
  else raise "unknown kind #{item['kind']}"
  end
end

key_of = ->(item) { Base64.strict_decode64(item['key']).force_encoding('UTF-8') }
if job['op'] == 'set'
  stored = 0
  failed = []
  job['items'].each do |item|
    begin
      client.set(key_of.call(item), value_of(item)) ? stored += 1 : failed << item['key']
    rescue ArgumentError, Dalli::DalliError
      failed << item['key']
    end
  end
  puts JSON.generate({ stored: stored, failed: failed })
else
  ok = 0
  wrong = []
  missing = []
  job['items'].each do |item|
    got = client.get(key_of.call(item))
    if got.nil?
      missing << item['key']
    elsif got == value_of(item)
      ok += 1
    else
      wrong << item['key']
    end
  end
  puts JSON.generate({ ok: ok, wrong: wrong, missing: missing })
end
