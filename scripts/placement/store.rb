# Stores every key of a memshift placement job through Ruby Dalli.
# Usage: ruby store.rb JOB.json   (see produce.py for the job format)
require 'json'
require 'dalli'

job = JSON.parse(File.read(ARGV[0]))
servers = job['servers'].map { |s| "#{s['host']}:#{s['port']}:#{s['weight']}" }
client = Dalli::Client.new(servers, failover: false, socket_timeout: 2)
stored = 0
failed = 0
job['keys'].each do |key|
  begin
    client.set(key, 'v') ? stored += 1 : failed += 1
  rescue ArgumentError, Dalli::DalliError
    failed += 1
  end
end
puts JSON.generate({ stored: stored, failed: failed })
